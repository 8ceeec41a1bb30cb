"""CreateCollection's shard count is bounded in meta too (meta can be called without the router)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from pymilvus import DataType
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from mishards.common.errors import MilvusError
from mishards.common.settings import Settings
from mishards.meta import ddl
from mishards.meta.ddl import DdlExecutor
from mishards.meta.store import Store
from mishards.meta.tso import TimestampOracle


class OneWritable:
    def instances(self, role: Any = None, healthy_only: bool = True) -> list[Any]:
        return [type("Instance", (), {"identity": "a:1", "address": "a:1"})()]


def executor(tmp_path: Path) -> DdlExecutor:
    store = Store(f"sqlite:///{tmp_path}/meta.db")
    store.migrate()

    async def on_change(version: int) -> None:
        return None

    tso = TimestampOracle(lambda upto_ms: 0)
    return DdlExecutor(store, tso, OneWritable(), None, Settings(), on_change)  # type: ignore[arg-type]


def request(shards_num: int) -> milvus_pb2.CreateCollectionRequest:
    schema = schema_pb2.CollectionSchema(
        name="c",
        fields=[
            schema_pb2.FieldSchema(fieldID=100, name="pk", data_type=DataType.INT64, is_primary_key=True),
            schema_pb2.FieldSchema(fieldID=101, name="v", data_type=DataType.FLOAT_VECTOR),
        ],
    )
    return milvus_pb2.CreateCollectionRequest(
        collection_name="c", schema=schema.SerializeToString(), shards_num=shards_num
    )


@pytest.mark.parametrize("shards_num", [17, 200_000, 2**31 - 1])
def test_more_than_16_shards_get_milvus_2_3_5s_error_and_nothing_is_stored(tmp_path: Path, shards_num: int) -> None:
    ex = executor(tmp_path)
    with pytest.raises(MilvusError) as caught:
        asyncio.run(ex.create_collection(request(shards_num), "default"))
    assert (caught.value.code, caught.value.reason) == (65535, "maximum shards's number should be limited to 16")
    assert caught.value.to_status().error_code == 1  # UnexpectedError, as 2.3.5 sends it
    assert ex.store.collections(("ready", "creating", "dropping")) == []


class Placed(Exception):
    pass


@pytest.mark.parametrize(("shards_num", "expected"), [(0, 2), (-1, 2), (-(2**31), 2), (16, 16)])
def test_zero_or_negative_means_the_default_and_placement_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards_num: int, expected: int
) -> None:
    seen: list[tuple[int, bool]] = []

    def place(key: str, shards: int, writable: list[str]) -> list[str]:
        seen.append((shards, threading.current_thread() is threading.main_thread()))
        raise Placed()

    monkeypatch.setattr(ddl.placement, "place_primaries", place)
    with pytest.raises(Placed):
        asyncio.run(executor(tmp_path).create_collection(request(shards_num), "default"))
    assert seen == [(expected, False)]
    assert Settings().DEFAULT_SHARDS_NUM == 2
