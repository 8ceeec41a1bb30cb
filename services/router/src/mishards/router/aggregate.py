"""Answers built from the catalog plus the state of every copy (describe, index, load, stats, flush)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common import errors
from mishards.common.backends import BackendPool
from mishards.common.errors import OK, MilvusError
from mishards.common.milvus_messages import response_class
from mishards.router.catalog import CollectionView
from mishards.router.fanout import ShardCall, call_shards, rename_status
from mishards.router.topology import Target, Topology


def describe_collection(view: CollectionView) -> milvus_pb2.DescribeCollectionResponse:
    created_ms = view.message.created_timestamp >> 18
    schema = schema_pb2.CollectionSchema()
    schema.CopyFrom(view.schema)
    schema.name = view.name  # stored at creation; a rename changes only the catalog's name
    resp = milvus_pb2.DescribeCollectionResponse(
        status=OK,
        schema=schema,
        collectionID=view.id,
        created_timestamp=view.message.created_timestamp,
        created_utc_timestamp=created_ms,
        shards_num=view.shards_num,
        aliases=list(view.message.aliases),
        consistency_level=view.message.consistency_level,
        collection_name=view.name,
        db_name=view.db_name,
        num_partitions=len(view.message.partitions),
    )
    resp.virtual_channel_names.extend(f"mishards-{view.id}-dml_{k}_v0" for k in range(view.shards_num))
    resp.physical_channel_names.extend(f"mishards-{view.id}-dml_{k}" for k in range(view.shards_num))
    for kv in view.message.properties:
        resp.properties.add(key=kv.key, value=kv.value)
    return resp


def show_collections(views: list[CollectionView], names: list[str]) -> milvus_pb2.ShowCollectionsResponse:
    resp = milvus_pb2.ShowCollectionsResponse(status=OK)
    wanted = set(names)
    for view in views:
        if wanted and view.name not in wanted:
            continue
        resp.collection_names.append(view.name)
        resp.collection_ids.append(view.id)
        resp.created_timestamps.append(view.message.created_timestamp)
        resp.created_utc_timestamps.append(view.message.created_timestamp >> 18)
        resp.inMemory_percentages.append(100 if view.message.loaded else 0)
        resp.query_service_available.append(view.message.loaded)
    return resp


def show_partitions(view: CollectionView, names: list[str]) -> milvus_pb2.ShowPartitionsResponse:
    resp = milvus_pb2.ShowPartitionsResponse(status=OK)
    wanted = set(names)
    for i, name in enumerate(view.message.partitions):
        if wanted and name not in wanted:
            continue
        resp.partition_names.append(name)
        resp.partitionIDs.append(view.id * 4096 + i)  # stable per collection; backends' ids differ per copy
        resp.created_timestamps.append(view.message.created_timestamp)
        resp.created_utc_timestamps.append(view.message.created_timestamp >> 18)
        resp.inMemory_percentages.append(100 if view.message.loaded else 0)
    return resp


def for_copy(request: Any) -> Callable[[str], Any]:
    """A builder of `request` addressed to one copy (its physical name, the default database)."""

    def build(physical: str) -> Any:
        out = type(request)()
        out.CopyFrom(request)
        out.db_name = ""
        out.collection_name = physical
        return out

    return build


class CopyState:
    """Asks every copy (the primaries until replicas exist) and aggregates."""

    def __init__(self, topology: Topology, backends: BackendPool, timeout: float) -> None:
        self.topology = topology
        self.backends = backends
        self.timeout = timeout
        # router-side compaction jobs: job id -> [(address, that backend's compaction id)]
        self._compactions: dict[int, list[tuple[str, int]]] = {}

    async def on_every_copy(self, view: CollectionView, method: str, build: Callable[[str], Any]) -> list[Any]:
        calls = [
            ShardCall(s, [Target(self.topology.primary_address(s, view.name))], build(s.physical_name))
            for s in view.shards
        ]
        return await call_shards(self.backends, view, method, calls, self.timeout)

    async def describe_index(self, view: CollectionView, req: Any, method: str = "DescribeIndex") -> Any:
        """DescribeIndex or GetIndexStatistics: finished only when every copy is, row counts summed."""
        build = for_copy(req)
        responses = await self.on_every_copy(view, method, build)
        merged = response_class(method)(status=OK)
        merged.index_descriptions.extend(responses[0].index_descriptions)
        for desc in merged.index_descriptions:
            desc.indexed_rows = desc.total_rows = desc.pending_index_rows = 0
            worst = common_pb2.Finished
            for resp in responses:
                other = next((d for d in resp.index_descriptions if d.index_name == desc.index_name), None)
                if other is None:
                    worst = common_pb2.InProgress
                    continue
                desc.indexed_rows += other.indexed_rows
                desc.total_rows += other.total_rows
                desc.pending_index_rows += other.pending_index_rows
                if other.state != common_pb2.Finished and worst == common_pb2.Finished:
                    worst = other.state
                    desc.index_state_fail_reason = other.index_state_fail_reason
            desc.state = worst
        return merged

    async def loading_progress(
        self, view: CollectionView, req: milvus_pb2.GetLoadingProgressRequest
    ) -> milvus_pb2.GetLoadingProgressResponse:
        build = for_copy(req)
        responses = await self.on_every_copy(view, "GetLoadingProgress", build)
        return milvus_pb2.GetLoadingProgressResponse(
            status=OK,
            progress=min(r.progress for r in responses),
            refresh_progress=min(r.refresh_progress for r in responses),
        )

    async def load_state(
        self, view: CollectionView, req: milvus_pb2.GetLoadStateRequest
    ) -> milvus_pb2.GetLoadStateResponse:
        build = for_copy(req)
        responses = await self.on_every_copy(view, "GetLoadState", build)
        states = {r.state for r in responses}
        if states == {common_pb2.LoadStateLoaded}:
            state = common_pb2.LoadStateLoaded
        elif common_pb2.LoadStateNotLoad in states or common_pb2.LoadStateNotExist in states:
            state = common_pb2.LoadStateNotLoad
        else:
            state = common_pb2.LoadStateLoading
        return milvus_pb2.GetLoadStateResponse(status=OK, state=state)

    async def collection_statistics(self, view: CollectionView) -> milvus_pb2.GetCollectionStatisticsResponse:
        responses = await self.on_every_copy(
            view, "GetCollectionStatistics", lambda p: milvus_pb2.GetCollectionStatisticsRequest(collection_name=p)
        )
        out = milvus_pb2.GetCollectionStatisticsResponse(status=OK)
        out.stats.add(key="row_count", value=str(sum(_row_count(r.stats) for r in responses)))
        return out

    async def partition_statistics(
        self, view: CollectionView, partition: str
    ) -> milvus_pb2.GetPartitionStatisticsResponse:
        responses = await self.on_every_copy(
            view,
            "GetPartitionStatistics",
            lambda p: milvus_pb2.GetPartitionStatisticsRequest(collection_name=p, partition_name=partition),
        )
        out = milvus_pb2.GetPartitionStatisticsResponse(status=OK)
        out.stats.add(key="row_count", value=str(sum(_row_count(r.stats) for r in responses)))
        return out

    async def compact(self, view: CollectionView, job_id: int) -> milvus_pb2.ManualCompactionResponse:
        """Compact every copy; the job id names the per-copy compactions for GetCompactionState."""
        described = await self.on_every_copy(
            view, "DescribeCollection", lambda p: milvus_pb2.DescribeCollectionRequest(collection_name=p)
        )
        by_physical = {s.physical_name: d.collectionID for s, d in zip(view.shards, described)}
        responses = await self.on_every_copy(
            view,
            "ManualCompaction",
            lambda p: milvus_pb2.ManualCompactionRequest(collectionID=by_physical[p], collection_name=p),
        )
        self._compactions[job_id] = [
            (self.topology.primary_address(s, view.name), r.compactionID) for s, r in zip(view.shards, responses)
        ]
        while len(self._compactions) > 1024:  # remember recent jobs only
            self._compactions.pop(next(iter(self._compactions)))
        return milvus_pb2.ManualCompactionResponse(
            status=OK, compactionID=job_id, compactionPlanCount=sum(r.compactionPlanCount for r in responses)
        )

    async def compaction_state(self, job_id: int) -> milvus_pb2.GetCompactionStateResponse:
        jobs = self._compactions.get(job_id)
        if jobs is None:
            return milvus_pb2.GetCompactionStateResponse(status=OK, state=common_pb2.Completed)
        states = []
        for address, compaction_id in jobs:
            states.append(
                await self.backends.stub(address).GetCompactionState(
                    milvus_pb2.GetCompactionStateRequest(compactionID=compaction_id),
                    timeout=self.timeout,
                    metadata=self.backends.metadata(),
                )
            )
        done = all(st.state == common_pb2.Completed for st in states)
        out = milvus_pb2.GetCompactionStateResponse(
            status=OK, state=common_pb2.Completed if done else common_pb2.Executing
        )
        for st in states:
            out.executingPlanNo += st.executingPlanNo
            out.timeoutPlanNo += st.timeoutPlanNo
            out.completedPlanNo += st.completedPlanNo
            out.failedPlanNo += st.failedPlanNo
        return out

    async def flush(self, view: CollectionView) -> None:
        """Flush every copy and wait until each reports its segments flushed."""
        responses = await self.on_every_copy(view, "Flush", lambda p: milvus_pb2.FlushRequest(collection_names=[p]))

        async def wait(shard: Any, resp: milvus_pb2.FlushResponse) -> None:
            physical = shard.physical_name
            segments = list(resp.coll_segIDs[physical].data) if physical in resp.coll_segIDs else []
            flush_ts = resp.coll_flush_ts.get(physical, 0)
            stub = self.backends.stub(self.topology.primary_address(shard, view.name))
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                state = await stub.GetFlushState(
                    milvus_pb2.GetFlushStateRequest(segmentIDs=segments, flush_ts=flush_ts, collection_name=physical),
                    timeout=self.timeout,
                    metadata=self.backends.metadata(),
                )
                if errors.is_error(state.status):
                    raise MilvusError.from_status(rename_status(state.status, view))
                if state.flushed:
                    return
                await asyncio.sleep(0.2)
            raise errors.flush_timed_out(view.name, shard.index)

        await asyncio.gather(*(wait(s, r) for s, r in zip(view.shards, responses)))

    async def flushed(self, view: CollectionView, positions: dict[int, Any]) -> bool:
        """True when every shard's primary applied its position and its Milvus has flushed up to there.

        The Milvus is asked about its own timestamp of that position (meta keeps recent ones);
        when that is not known, about a timestamp it allocates now, which can only make the
        answer later, never wrong.
        """

        async def one(shard: Any) -> bool:
            position = positions[shard.index]
            primary = next((c for c in position.copies if c.instance == shard.primary), None)
            if primary is None or primary.applied_seq < position.seq:
                return False
            stub = self.backends.stub(self.topology.primary_address(shard, view.name))
            flush_ts = primary.backend_timestamp_at_seq or primary.backend_timestamp
            if not flush_ts:
                try:
                    now = await stub.AllocTimestamp(
                        milvus_pb2.AllocTimestampRequest(), timeout=self.timeout, metadata=self.backends.metadata()
                    )
                    flush_ts = now.timestamp
                except grpc.aio.AioRpcError:  # milvus-lite has no clock to give; it flushes as it writes
                    flush_ts = 0
            state = await stub.GetFlushState(
                milvus_pb2.GetFlushStateRequest(collection_name=shard.physical_name, flush_ts=flush_ts),
                timeout=self.timeout,
                metadata=self.backends.metadata(),
            )
            if errors.is_error(state.status):
                raise MilvusError.from_status(rename_status(state.status, view))
            return bool(state.flushed)

        return all(await asyncio.gather(*(one(s) for s in view.shards)))


def _row_count(stats: Any) -> int:
    return sum(int(kv.value) for kv in stats if kv.key == "row_count")
