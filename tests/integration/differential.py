"""The differential harness: run the same calls through the router and on one Milvus, compare."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

# Features a backend lacks and the router cannot provide over it (docs/compatibility.md):
# their tests are skipped there. Any other feature the direct backend refuses fails the test.
ALLOWED_MISSING = {
    "milvus": {"hybrid", "group_by", "multi_vector", "sparse"},  # Milvus 2.3 has none of them
    "milvus-lite": {"binary"},  # milvus-lite 3.x has no BINARY_VECTOR type
}


def supported(backend: str, feature: str, direct: MilvusClient, call: Callable[[MilvusClient], Any]) -> bool:
    """True when the direct backend supports the feature; a required feature it refuses fails the test."""
    try:
        call(direct)
        return True
    except MilvusException as exc:
        if feature not in ALLOWED_MISSING[backend]:
            pytest.fail(f"{feature} must work on {backend}, but the backend refused it: {exc}")
        return False


def require(backend: str, feature: str, direct: MilvusClient, call: Callable[[MilvusClient], Any]) -> None:
    """Skip the test when the backend lacks a feature it may lack; fail it for any other."""
    if not supported(backend, feature, direct, call):
        pytest.skip(f"{backend} has no {feature} (docs/compatibility.md)")


class Pair(NamedTuple):
    """The router and a single instance of the same backend holding the same data."""

    backend: str
    router: MilvusClient
    direct: MilvusClient
    cluster: Any  # mishards.cli.cluster.Cluster, whose instances hold the shards


@dataclass
class Outcome:
    value: Any = None
    error: MilvusException | None = None


def run_both(
    router: MilvusClient, direct: MilvusClient, call: Callable[[MilvusClient], Any]
) -> tuple[Outcome, Outcome]:
    out = []
    for client in (router, direct):
        try:
            out.append(Outcome(value=call(client)))
        except MilvusException as exc:
            out.append(Outcome(error=exc))
    return out[0], out[1]


def assert_same_error(r: Outcome, d: Outcome, message: bool = False) -> None:
    """Both failed with the same code (and, with `message`, the same message)."""
    assert d.error is not None, f"direct Milvus accepted what was expected to fail: {d.value}"
    assert r.error is not None, f"router accepted what Milvus rejects ({d.error}): {r.value}"
    assert r.error.code == d.error.code, f"codes differ: router {r.error} vs direct {d.error}"
    if message:
        assert r.error.message == d.error.message, f"messages differ: router {r.error} vs direct {d.error}"


# Numbers of nine or more digits in a message are ids (collection, segment, timestamp) that
# differ between the router's copies and the direct Milvus; they are compared as "<id>".
_ID = re.compile(r"\d{9,}")


def normalised(message: str) -> str:
    return _ID.sub("<id>", message)


def assert_same_failure(r: Outcome, d: Outcome) -> None:
    """Both fail, with the same code and the same message (ids normalised)."""
    assert_same_error(r, d)
    assert r.error is not None and d.error is not None
    assert normalised(r.error.message) == normalised(d.error.message), (
        f"messages differ: router {r.error.message!r} vs direct {d.error.message!r}"
    )


def assert_search_equal(
    r_hits: list[list[dict[str, Any]]],
    d_hits: list[list[dict[str, Any]]],
    tol: float = 1e-4,
    fields: tuple[str, ...] = (),
) -> None:
    """Per query: same distances (within tol) in order; ids equal up to ties.

    Hits with equal distance may come in any order, and at the cut-off distance a single
    Milvus may keep any of the tied ids; so ids are compared as sets per tie group, and the
    last group (which the limit may cut) only by its size.
    """
    assert len(r_hits) == len(d_hits), "number of queries differs"
    for qi, (rq, dq) in enumerate(zip(r_hits, d_hits)):
        assert len(rq) == len(dq), f"query {qi}: {len(rq)} hits via router, {len(dq)} direct"
        for a, b in zip(rq, dq):
            assert math.isclose(a["distance"], b["distance"], rel_tol=tol, abs_tol=tol), (
                f"query {qi}: distance {a['distance']} via router vs {b['distance']} direct"
            )
        groups_r = _tie_groups(rq, tol)
        groups_d = _tie_groups(dq, tol)
        assert len(groups_r) == len(groups_d)
        for gi, (gr, gd) in enumerate(zip(groups_r, groups_d)):
            if gi == len(groups_r) - 1:
                assert len(gr) == len(gd)
                continue
            assert {hit_id(h) for h in gr} == {hit_id(h) for h in gd}, f"query {qi}: ids differ in tie group {gi}"
        by_id = {hit_id(h): h for h in dq}
        for h in rq:
            if hit_id(h) in by_id:
                for f in fields:
                    assert h["entity"].get(f) == by_id[hit_id(h)]["entity"].get(f), f"field {f} of {hit_id(h)} differs"


def hit_id(hit: dict[str, Any]) -> Any:
    """A hit's primary key (pymilvus names it after the primary field)."""
    if "id" in hit:
        return hit["id"]
    return next(v for k, v in hit.items() if k not in ("distance", "entity"))


def _tie_groups(hits: list[dict[str, Any]], tol: float) -> list[list[dict[str, Any]]]:
    groups: list[list[dict[str, Any]]] = []
    for h in hits:
        if groups and math.isclose(groups[-1][0]["distance"], h["distance"], rel_tol=tol, abs_tol=tol):
            groups[-1].append(h)
        else:
            groups.append([h])
    return groups


def sorted_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return sorted((dict(r) for r in rows), key=lambda r: r[key])
