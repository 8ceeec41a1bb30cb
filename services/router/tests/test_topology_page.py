"""The topology page's data: instances, collections, shards and copies, recent errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pymilvus.grpc_gen import schema_pb2

from mishards.common.membership import MembershipWatcher
from mishards.router.catalog import CatalogCache
from mishards.router.meta_client import MetaClient
from mishards.router.topology_page import PAGE, CopyStates, RecentErrors, TopologyPage
from mishards.v1 import discovery_pb2, meta_pb2


def _catalog() -> meta_pb2.Catalog:
    schema = schema_pb2.CollectionSchema(
        name="demo", fields=[schema_pb2.FieldSchema(name="id", is_primary_key=True, data_type=schema_pb2.Int64)]
    )
    coll = meta_pb2.Collection(
        id=7, db_name="default", name="demo", shards_num=2, schema=schema.SerializeToString(), aliases=["d"]
    )
    coll.shards.add(index=0, physical_name="mishards_7_s0", primary="wo-1", replicas=["ro-1"])
    coll.shards.add(index=1, physical_name="mishards_7_s1", primary="wo-2")
    return meta_pb2.Catalog(version=3, databases=["default"], collections=[coll])


def _snapshot(states: CopyStates) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        membership = MembershipWatcher("127.0.0.1:1")
        membership.membership = discovery_pb2.Membership(
            version=5,
            backend_ok=True,
            instances=[
                discovery_pb2.Instance(
                    identity="wo-1", address="h1:19530", role=discovery_pb2.WRITABLE, health=discovery_pb2.HEALTHY
                ),
                discovery_pb2.Instance(
                    identity="wo-2",
                    address="h2:19530",
                    role=discovery_pb2.WRITABLE,
                    health=discovery_pb2.DOWN,
                    reason="refused",
                ),
                discovery_pb2.Instance(
                    identity="ro-1", address="h3:19530", role=discovery_pb2.READONLY, health=discovery_pb2.HEALTHY
                ),
            ],
        )
        meta = MetaClient.connect("127.0.0.1:1")
        catalog = CatalogCache(meta)
        catalog._install(_catalog())
        errors = RecentErrors(size=2)
        for i in range(3):
            errors.record("Search", "100", f"collection not found {i}")

        async def copy_states() -> CopyStates:
            return states

        page = TopologyPage(membership, catalog, errors, copy_states)
        body = await page.data()
        await meta.close()
        return dict(json.loads(body.body))

    return asyncio.run(run())


def test_snapshot_shows_instances_shards_copies_and_recent_errors() -> None:
    snap = _snapshot({})
    assert [(i["identity"], i["role"], i["health"]) for i in snap["instances"]] == [
        ("wo-1", "writable", "healthy"),
        ("wo-2", "writable", "down"),
        ("ro-1", "readonly", "healthy"),
    ]
    (coll,) = snap["collections"]
    assert (coll["name"], coll["shards_num"], coll["aliases"]) == ("demo", 2, ["d"])
    copies = [[(c["instance"], c["address"], c["role"], c["state"]) for c in s["copies"]] for s in coll["shards"]]
    assert copies == [
        [("wo-1", "h1:19530", "primary", "ready"), ("ro-1", "h3:19530", "replica", "placed")],
        [("wo-2", "h2:19530", "primary", "ready")],
    ]
    assert [e["message"] for e in snap["errors"]] == ["collection not found 2", "collection not found 1"]
    assert snap["copies_by_state"] == {"ready": 2, "placed": 1}


def test_copy_states_from_meta_override_the_defaults() -> None:
    snap = _snapshot({(7, 0, "ro-1"): ("catching_up", 12)})
    replica = snap["collections"][0]["shards"][0]["copies"][1]
    assert (replica["state"], replica["lag"]) == ("catching_up", 12)


def test_page_is_self_contained() -> None:
    assert "topology.json" in PAGE and "<script" in PAGE
    assert "http://" not in PAGE and "https://" not in PAGE  # no external assets
