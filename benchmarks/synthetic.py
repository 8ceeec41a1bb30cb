"""Synthetic Milvus backends: just enough MilvusService for the router to create, load and search.

One process serves every synthetic instance (one gRPC port each, a shared servicer),
so that 64 instances do not cost 64 Python processes on a 2-core machine; state is keyed
by physical collection name, which is unique per shard. Search answers after a fixed
delay with ``topk`` hits per query whose ids are unique across instances.

    python -m benchmarks.synthetic --ports 19700,19701 --delay-ms 2
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc
import numpy as np
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

from benchmarks.forwarder import OPTIONS

OK = common_pb2.Status()


def not_found(name: str) -> common_pb2.Status:
    return common_pb2.Status(
        error_code=common_pb2.CollectionNotExists, code=100, reason=f"collection not found[collection={name}]"
    )


def search_answer(seed: int, nq: int, topk: int) -> schema_pb2.SearchResultData:
    """``topk`` hits per query, scores descending (COSINE-like), ids ``seed * 10**9 + j``."""
    rng = np.random.default_rng(seed)
    out = schema_pb2.SearchResultData(num_queries=nq, top_k=topk)
    scores = np.sort(rng.random((nq, topk), dtype=np.float32), axis=1)[:, ::-1]
    out.scores.extend(scores.ravel().tolist())
    out.ids.int_id.data.extend((seed * 10**9 + np.tile(np.arange(topk), nq)).tolist())
    out.topks.extend([topk] * nq)
    out.all_search_count = nq * topk
    return out


class SyntheticMilvus(milvus_pb2_grpc.MilvusServiceServicer):
    """The RPCs meta's DDL and the router's reads use; everything else is UNIMPLEMENTED."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.schemas: dict[str, schema_pb2.CollectionSchema] = {}
        self.indexes: dict[str, list[milvus_pb2.IndexDescription]] = {}
        self.answers: dict[tuple[str, int, int], milvus_pb2.SearchResults] = {}
        self.searches = 0

    async def Connect(self, request: Any, context: Any) -> milvus_pb2.ConnectResponse:
        return milvus_pb2.ConnectResponse(status=OK, identifier=1)  # pymilvus's handshake (through the forwarder)

    async def CheckHealth(self, request: Any, context: Any) -> milvus_pb2.CheckHealthResponse:
        return milvus_pb2.CheckHealthResponse(status=OK, isHealthy=True)

    async def GetVersion(self, request: Any, context: Any) -> milvus_pb2.GetVersionResponse:
        return milvus_pb2.GetVersionResponse(status=OK, version="v2.3.5-synthetic")

    async def CreateCollection(self, request: milvus_pb2.CreateCollectionRequest, context: Any) -> common_pb2.Status:
        schema = schema_pb2.CollectionSchema.FromString(request.schema)
        for i, field in enumerate(schema.fields):
            field.fieldID = 100 + i  # as Milvus numbers user fields
        self.schemas[request.collection_name] = schema
        return OK

    async def DropCollection(self, request: milvus_pb2.DropCollectionRequest, context: Any) -> common_pb2.Status:
        self.schemas.pop(request.collection_name, None)
        self.indexes.pop(request.collection_name, None)
        return OK

    async def DescribeCollection(
        self, request: milvus_pb2.DescribeCollectionRequest, context: Any
    ) -> milvus_pb2.DescribeCollectionResponse:
        schema = self.schemas.get(request.collection_name)
        if schema is None:
            return milvus_pb2.DescribeCollectionResponse(status=not_found(request.collection_name))
        return milvus_pb2.DescribeCollectionResponse(
            status=OK, schema=schema, collection_name=request.collection_name, shards_num=1
        )

    async def ShowPartitions(
        self, request: milvus_pb2.ShowPartitionsRequest, context: Any
    ) -> milvus_pb2.ShowPartitionsResponse:
        return milvus_pb2.ShowPartitionsResponse(status=OK, partition_names=["_default"], partitionIDs=[1])

    async def CreateIndex(self, request: milvus_pb2.CreateIndexRequest, context: Any) -> common_pb2.Status:
        desc = milvus_pb2.IndexDescription(
            index_name=request.index_name or request.field_name,
            field_name=request.field_name,
            state=common_pb2.Finished,
        )
        desc.params.extend(request.extra_params)
        self.indexes.setdefault(request.collection_name, []).append(desc)
        return OK

    async def DescribeIndex(
        self, request: milvus_pb2.DescribeIndexRequest, context: Any
    ) -> milvus_pb2.DescribeIndexResponse:
        found = self.indexes.get(request.collection_name, [])
        if not found:
            return milvus_pb2.DescribeIndexResponse(
                status=common_pb2.Status(error_code=common_pb2.IndexNotExist, code=700, reason="index not found")
            )
        return milvus_pb2.DescribeIndexResponse(status=OK, index_descriptions=found)

    async def DropIndex(self, request: milvus_pb2.DropIndexRequest, context: Any) -> common_pb2.Status:
        self.indexes.pop(request.collection_name, None)
        return OK

    async def LoadCollection(self, request: Any, context: Any) -> common_pb2.Status:
        return OK

    async def ReleaseCollection(self, request: Any, context: Any) -> common_pb2.Status:
        return OK

    async def GetLoadingProgress(self, request: Any, context: Any) -> milvus_pb2.GetLoadingProgressResponse:
        return milvus_pb2.GetLoadingProgressResponse(status=OK, progress=100, refresh_progress=100)

    async def GetLoadState(self, request: Any, context: Any) -> milvus_pb2.GetLoadStateResponse:
        return milvus_pb2.GetLoadStateResponse(status=OK, state=common_pb2.LoadStateLoaded)

    async def GetCollectionStatistics(self, request: Any, context: Any) -> milvus_pb2.GetCollectionStatisticsResponse:
        out = milvus_pb2.GetCollectionStatisticsResponse(status=OK)
        out.stats.add(key="row_count", value="0")
        return out

    async def Search(self, request: milvus_pb2.SearchRequest, context: Any) -> milvus_pb2.SearchResults:
        self.searches += 1
        params = {kv.key: kv.value for kv in request.search_params}
        key = (request.collection_name, request.nq, int(params.get("topk", "10")))
        answer = self.answers.get(key)
        if answer is None:
            # The shard's number (mishards_<id>_s<k>) keeps ids unique across instances.
            seed = int(request.collection_name.rsplit("_s", 1)[-1]) if "_s" in request.collection_name else 0
            answer = milvus_pb2.SearchResults(
                status=OK, results=search_answer(seed, key[1], key[2]), collection_name=request.collection_name
            )
            self.answers[key] = answer
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        return answer


async def serve(ports: list[int], delay_s: float, host: str = "127.0.0.1") -> None:
    server = grpc.aio.server(options=OPTIONS)
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(SyntheticMilvus(delay_s), server)
    for port in ports:
        server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="comma-separated ports, one per synthetic instance")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="fixed delay before a search answers")
    args = parser.parse_args(argv)
    asyncio.run(serve([int(p) for p in args.ports.split(",")], args.delay_ms / 1000.0))


if __name__ == "__main__":
    main()
