"""A replica filling while DDL runs still ends with the collection's indexes and load state.

DDL reaches only ready (and stale) replicas, so a fill converges to the catalog as it stands
at its end. The backend here is a recording fake of the MilvusService calls involved;
its answers have the shapes of pymilvus.grpc_gen's messages.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common.errors import MilvusError
from mishards.common.settings import load_settings
from mishards.meta.replicas import ReplicaManager, _Applied
from mishards.meta.store import READY, Store


class RecordingStub:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, method: str) -> Any:
        async def call(request: Any, **_: Any) -> Any:
            self.calls.append((method, request))
            if method == "GetLoadingProgress":
                return milvus_pb2.GetLoadingProgressResponse(status=common_pb2.Status(), progress=100)
            if method == "DescribeIndex":  # built at once
                answer = milvus_pb2.DescribeIndexResponse(status=common_pb2.Status())
                answer.index_descriptions.add(index_name=request.index_name, state=common_pb2.IndexState.Finished)
                return answer
            return common_pb2.Status()

        return call


class Backends:
    def __init__(self) -> None:
        self.recorder = RecordingStub()

    def stub(self, address: str) -> RecordingStub:
        return self.recorder

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path}/meta.db")
    s.migrate()
    return s


def manager(store: Store, backends: Backends) -> ReplicaManager:
    async def on_change(version: int) -> None:
        return None

    return ReplicaManager(store, None, backends, None, load_settings(), on_change)  # type: ignore[arg-type]


def collection(store: Store) -> int:
    spec = store.add_collection("default", "c", b"", 1, 0, [], 1, ["wo:19530"])
    store.set_state(spec.id, READY)
    return spec.id


def test_indexes_partitions_and_load_taken_during_the_fill_are_applied(store: Store) -> None:
    cid = collection(store)
    applied = _Applied({"_default"}, set(), False, (), False)
    # what DDL did while the rows were copied: a partition, an index, a load
    store.add_partition(cid, "p1")
    store.put_index(cid, "vector", "vector", {"index_type": "FLAT", "metric_type": "L2"})
    store.set_loaded(cid, True)
    backends = Backends()
    assert asyncio.run(manager(store, backends)._converge(cid, "ro:19530", "mishards_1_s0", applied))
    methods = [m for m, _ in backends.recorder.calls]
    assert methods == ["CreatePartition", "CreateIndex", "DescribeIndex", "LoadCollection", "GetLoadingProgress"]
    index = backends.recorder.calls[1][1]
    assert index.collection_name == "mishards_1_s0" and index.field_name == "vector"
    assert {kv.key: kv.value for kv in index.extra_params} == {"index_type": "FLAT", "metric_type": "L2"}
    assert applied.indexes == {"vector"} and applied.loaded and "p1" in applied.partitions
    # a second pass has nothing left to do
    backends.recorder.calls.clear()
    assert asyncio.run(manager(store, backends)._converge(cid, "ro:19530", "mishards_1_s0", applied))
    assert backends.recorder.calls == []


def test_a_removal_during_the_fill_restarts_it(store: Store) -> None:
    cid = collection(store)
    store.put_index(cid, "vector", "vector", {"index_type": "FLAT"})
    applied = _Applied({"_default"}, set(), False, (), False)
    backends = Backends()
    assert asyncio.run(manager(store, backends)._converge(cid, "ro:19530", "mishards_1_s0", applied))
    store.remove_index(cid, "vector")
    with pytest.raises(MilvusError, match="changed during the fill"):
        asyncio.run(manager(store, backends)._converge(cid, "ro:19530", "mishards_1_s0", applied))


def test_a_dropped_collection_ends_the_fill(store: Store) -> None:
    cid = collection(store)
    store.remove_collection(cid)
    applied = _Applied({"_default"}, set(), False, (), False)
    assert not asyncio.run(manager(store, Backends())._converge(cid, "ro:19530", "mishards_1_s0", applied))
