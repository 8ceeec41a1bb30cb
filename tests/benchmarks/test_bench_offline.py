"""Offline checks of the benchmark harness: the `tenants` configuration (schema, filters, targets) and the merge timing."""

from __future__ import annotations

from typing import Any

import pytest
from pymilvus import DataType

from benchmarks.configs import CONFIGS, TENANT_METRICS
from benchmarks.presets import PRESETS
from benchmarks.report import evaluate_cross_targets
from benchmarks.run import METRICS, measured_metrics
from benchmarks.workload import TENANT_FIELD, Operations, collection_schema, rows_of, tenant_filter, vectors

PRESET = PRESETS["small"]


def _config(name: str) -> Any:
    return next(c for c in CONFIGS if c.name == name)


def test_tenants_config_is_two_shards_on_two_writable_instances_with_16_tenants() -> None:
    cfg = _config("tenants")
    assert (cfg.writable, cfg.readonly, cfg.shards, cfg.tenants) == (2, 0, 2, 16)
    assert cfg.skip_reason() is None
    assert [m[0] for m in measured_metrics(cfg)] == list(TENANT_METRICS)
    assert measured_metrics(_config("1shard")) == METRICS  # the others still measure everything


def test_tenants_schema_has_a_varchar_partition_key() -> None:
    fields = {f.name: f for f in collection_schema(PRESET, 16).fields}
    assert fields[TENANT_FIELD].dtype == DataType.VARCHAR
    assert fields[TENANT_FIELD].is_partition_key
    assert sum(f.is_partition_key for f in fields.values()) == 1
    plain = {f.name for f in collection_schema(PRESET).fields}
    assert TENANT_FIELD not in plain


def test_every_search_filters_one_tenant_and_rows_carry_theirs() -> None:
    ops = Operations(PRESET, 16)
    filters = [ops.search_filter(i)["filter"] for i in range(32)]
    assert filters[7] == 'tenant == "t07"'
    assert len(set(filters[:16])) == 16 and filters[:16] == filters[16:]
    assert Operations(PRESET).search_filter(7) == {}
    rows = rows_of(vectors(PRESET, 20, 0), 100, 16)
    assert [r[TENANT_FIELD] for r in rows[:3]] == ["t04", "t05", "t06"]
    assert all(f'"{r[TENANT_FIELD]}"' in tenant_filter(r["id"], 16) for r in rows)
    assert TENANT_FIELD not in rows_of(vectors(PRESET, 2, 0), 0)[0]


def _metric(direct: float, forwarder: float, router: float, kind: str) -> dict[str, Any]:
    key = "p50_ms" if kind == "latency" else "rate_median"
    return {
        "kind": kind,
        **{a: {key: v} for a, v in (("direct", direct), ("forwarder", forwarder), ("router", router))},
    }


def test_tenants_targets_compare_with_the_one_shard_hop() -> None:
    one = {"search_c1": _metric(2.0, 3.0, 3.2, "latency"), "search_c8": _metric(600, 480, 450, "throughput")}
    ten = {"search_c1": _metric(2.0, 3.0, 3.3, "latency"), "search_c8": _metric(600, 480, 420, "throughput")}
    targets = evaluate_cross_targets({"configs": {"1shard": {"metrics": one}, "tenants": {"metrics": ten}}})
    by_op = {t["op"]: t for t in targets}
    assert by_op[">="]["bound"] == pytest.approx(0.95 * 0.8) and by_op[">="]["value"] == pytest.approx(0.7)
    assert by_op[">="]["met"] is False
    assert by_op["<="]["bound"] == pytest.approx(1.05 * 1.5) and by_op["<="]["met"] is False  # 1.65 > 1.575
    assert evaluate_cross_targets({"configs": {"tenants": {"metrics": ten}}}) == []


def test_merge_timing_compares_equal_answers() -> None:
    from benchmarks.merge_timing import cases, time_case

    row = time_case(3, 10, True, rounds=1, seconds=0.001)  # raises when the two merges differ
    assert row["fast_path_used"] and row["fast_us"] > 0 and row["general_us"] > 0
    assert (2, 10) in cases([2], [10]) and all(s * k > 0 for s, k in cases([2, 64], [10, 100]))
