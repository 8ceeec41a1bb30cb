"""The fixed workload: seeded data, collection setup, and the measured operations of every arm."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from benchmarks.presets import Preset

SEARCH_COLLECTION = "bench_hnsw"
FLAT_COLLECTION = "bench_flat"
WRITE_COLLECTION = "bench_writes"
CONSISTENCY = "Bounded"
TENANT_FIELD = "tenant"


def tenant_of(row_id: int, tenants: int) -> str:
    """The tenant of a row in the ``tenants`` workload: ``t00`` … ``t15`` round robin over ids."""
    return f"t{row_id % tenants:02d}"


def tenant_filter(i: int, tenants: int) -> str:
    """The filter of the ``i``-th search of the ``tenants`` workload: one tenant, ``tenant == "t07"`` style."""
    return f'{TENANT_FIELD} == "{tenant_of(i, tenants)}"'


def vectors(preset: Preset, rows: int, stream: int) -> np.ndarray:
    """Seeded float32 vectors; ``stream`` tells data (0), queries (1) and write batches (2) apart."""
    rng = np.random.default_rng([preset.seed, stream])
    return rng.standard_normal((rows, preset.dim), dtype=np.float32)


def rows_of(vecs: np.ndarray, first_id: int, tenants: int = 0) -> list[dict[str, Any]]:
    """Row dicts with ids from ``first_id``; with ``tenants`` each row also gets its tenant."""
    rows = [{"id": first_id + j, "vector": v, "tag": (first_id + j) % 1000} for j, v in enumerate(vecs.tolist())]
    if tenants:
        for row in rows:
            row[TENANT_FIELD] = tenant_of(row["id"], tenants)
    return rows


def collection_schema(preset: Preset, tenants: int = 0) -> Any:
    """The benchmark schema; with ``tenants`` a varchar partition key ``tenant`` is added."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=preset.dim)
    schema.add_field("tag", DataType.INT64)
    if tenants:
        schema.add_field(TENANT_FIELD, DataType.VARCHAR, max_length=16, is_partition_key=True)
    return schema


def create_collection(client: MilvusClient, name: str, preset: Preset, shards: int, tenants: int = 0) -> None:
    if client.has_collection(name):
        client.drop_collection(name)
    schema = collection_schema(preset, tenants)
    extra: dict[str, Any] = {"num_partitions": tenants} if tenants else {}
    # Right after start, meta may not have seen the first healthy probe of every instance yet.
    deadline = time.monotonic() + 60.0
    while True:
        try:
            client.create_collection(name, schema=schema, shards_num=shards, consistency_level=CONSISTENCY, **extra)
            return
        except MilvusException as exc:
            if "no healthy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def insert_all(client: MilvusClient, name: str, data: np.ndarray, batch: int, tenants: int = 0) -> float:
    """Insert ``data`` (ids 0..n-1) in batches; returns seconds spent."""
    t0 = time.perf_counter()
    for start in range(0, len(data), batch):
        client.insert(name, rows_of(data[start : start + batch], start, tenants))
    return time.perf_counter() - t0


def index_params(preset: Preset, kind: str) -> Any:
    params = MilvusClient.prepare_index_params()
    if kind == "HNSW":
        params.add_index(
            field_name="vector",
            index_type="HNSW",
            metric_type="COSINE",
            params={"M": preset.hnsw_m, "efConstruction": preset.hnsw_ef_construction},
        )
    else:
        params.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
    return params


def wait_index(client: MilvusClient, name: str, rows: int, timeout: float = 3600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = client.describe_index(name, "vector")
        state = str(desc.get("state", ""))
        if state.endswith("Failed"):
            raise RuntimeError(f"index build of {name} failed: {desc}")
        if int(desc.get("indexed_rows", 0)) >= rows and int(desc.get("pending_index_rows", 0)) == 0:
            return
        time.sleep(1.0)
    raise TimeoutError(f"index of {name} not built after {timeout:.0f}s")


def build_index_and_load(client: MilvusClient, name: str, preset: Preset, kind: str, rows: int) -> None:
    client.create_index(name, index_params(preset, kind))
    wait_index(client, name, rows)
    client.load_collection(name)


def search_params(preset: Preset) -> dict[str, Any]:
    return {"metric_type": "COSINE", "params": {"ef": preset.hnsw_ef}}


def brute_force_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact COSINE top-k ids (float64) with numpy."""
    x = data.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sims = q @ x.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    return top


def recall_at_k(client: MilvusClient, name: str, queries: np.ndarray, truth: np.ndarray, preset: Preset) -> float:
    hits = client.search(
        name,
        data=queries.tolist(),
        limit=preset.topk,
        search_params=search_params(preset),
        consistency_level="Strong",
    )
    found = 0
    for qi, row in enumerate(hits):
        found += len({h["id"] for h in row} & set(truth[qi].tolist()))
    return found / truth.size


# --- the arms --------------------------------------------------------------------------------


@dataclass
class WriteCursor:
    """Ids of a write collection: shared by the arms that reach the same physical collection."""

    next_id: int = 0
    upsert_at: int = 0
    delete_at: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_insert(self, n: int) -> int:
        with self.lock:
            first = self.next_id
            self.next_id += n
            return first

    def take_existing(self, attr: str, n: int) -> int:
        with self.lock:
            first = getattr(self, attr)
            if first + n > self.next_id:
                first = 0
            setattr(self, attr, first + n)
            return first


@dataclass
class Arm:
    """One way to reach the data: ``direct``, ``forwarder`` or ``router``."""

    name: str
    client: MilvusClient
    cursor: WriteCursor


class Operations:
    """Each measured operation as ``op(arm, i) -> units done`` (searches or rows).

    With ``tenants`` (the ``tenants`` workload) rows carry a tenant and every search filters
    one tenant, a different one per call.
    """

    def __init__(self, preset: Preset, tenants: int = 0) -> None:
        self.preset = preset
        self.tenants = tenants
        self.queries = vectors(preset, 1000, 1).tolist()
        self.batches = [vectors(preset, preset.batch_rows, 2 + b) for b in range(4)]
        self.params = search_params(preset)

    def search(self, nq: int, level: str = CONSISTENCY) -> Callable[[Arm, int], int]:
        def op(arm: Arm, i: int) -> int:
            start = (i * nq) % (len(self.queries) - nq)
            arm.client.search(
                SEARCH_COLLECTION,
                data=self.queries[start : start + nq],
                limit=self.preset.topk,
                search_params=self.params,
                consistency_level=level,
                **self.search_filter(i),
            )
            return 1

        return op

    def search_filter(self, i: int) -> dict[str, str]:
        """The ``filter`` keyword of the ``i``-th search: one tenant, or none without tenants."""
        return {"filter": tenant_filter(i, self.tenants)} if self.tenants else {}

    def query_filter(self, arm: Arm, i: int) -> int:
        arm.client.query(
            SEARCH_COLLECTION,
            filter=f"tag >= {i % 900} and tag < {i % 900 + 100}",
            output_fields=["id", "tag"],
            limit=100,
            consistency_level=CONSISTENCY,
        )
        return 1

    def settle_writes(self, arm: Arm) -> None:
        """A Strong count of the write collection: returns once every acknowledged write is visible."""
        arm.client.query(WRITE_COLLECTION, output_fields=["count(*)"], consistency_level="Strong")

    def write_one(self, arm: Arm, i: int) -> None:
        """One row into the search collection (ids far above the data's), for a Session read right after."""
        row = {"id": 50_000_000 + i, "vector": self.queries[i % len(self.queries)], "tag": 0}
        if self.tenants:
            row[TENANT_FIELD] = tenant_of(i, self.tenants)
        arm.client.insert(SEARCH_COLLECTION, [row])

    def count(self, arm: Arm, i: int) -> int:
        arm.client.query(SEARCH_COLLECTION, output_fields=["count(*)"], consistency_level=CONSISTENCY)
        return 1

    # Writes: (prepare, call) so that building the row dicts stays outside the timing.
    def insert_rows(self, arm: Arm, i: int) -> Callable[[], int]:
        rows = rows_of(
            self.batches[i % len(self.batches)], arm.cursor.take_insert(self.preset.batch_rows), self.tenants
        )
        return lambda: (arm.client.insert(WRITE_COLLECTION, rows), len(rows))[1]

    def upsert_rows(self, arm: Arm, i: int) -> Callable[[], int]:
        first = arm.cursor.take_existing("upsert_at", self.preset.batch_rows)
        rows = rows_of(self.batches[(i + 1) % len(self.batches)], first, self.tenants)
        return lambda: (arm.client.upsert(WRITE_COLLECTION, rows), len(rows))[1]

    def delete_rows(self, arm: Arm, i: int) -> Callable[[], int]:
        first = arm.cursor.take_existing("delete_at", self.preset.batch_rows)
        ids = list(range(first, first + self.preset.batch_rows))
        return lambda: (arm.client.delete(WRITE_COLLECTION, ids=ids), len(ids))[1]
