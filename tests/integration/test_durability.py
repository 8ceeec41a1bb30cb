"""Durable, ordered writes against the session cluster (WRITE_ACK=logged): a writable instance down,
read-your-writes, a lagging primary, deadlines shorter than an append, refused and poison entries.

The crash test (kills of the router, meta and a writable Milvus, with a replica) is test_crash.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import grpc
import numpy as np
import pytest
from crashes import DIM, copy_contents, make_collection, wait_caught_up
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.cli.cluster import Cluster
from mishards.cli.ports import port_accepts
from mishards.common.hashing import shard_of
from mishards.v1 import discovery_pb2, discovery_pb2_grpc, meta_pb2, meta_pb2_grpc

NO_RETRY = {"retry_times": 0, "retry_on_rate_limit": False}


def rows(keys: list[int], tag: int) -> list[dict[str, Any]]:
    return [{"id": k, "vector": [0.5] * DIM, "tag": tag} for k in keys]


def keys_of(shard: int, n: int, start: int = 0) -> list[int]:
    return [k for k in range(start, start + 40 * n) if shard_of(k, 2) == shard][:n]


def primary_of(cluster: Cluster, collection_id: int, shard: int) -> Any:
    with cluster.meta_channel() as channel:
        copies = meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=10).copies
    identity = next(c.instance for c in copies if c.collection_id == collection_id and c.shard == shard)
    return next(inst for inst in cluster.instances if inst.identity == identity)


def count(client: MilvusClient, name: str, **kw: Any) -> int:
    return int(
        client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong", **kw)[0]["count(*)"]
    )


def _membership(cluster: Cluster) -> dict[str, Any]:
    with cluster.discovery_channel() as channel:
        m = discovery_pb2_grpc.DiscoveryStub(channel).ListInstances(discovery_pb2.ListInstancesRequest(), timeout=5)
    return {i.identity: i for i in m.instances}


def test_writes_to_a_shard_whose_primary_is_down_are_acknowledged_then_applied(cluster: Cluster, name: str) -> None:
    client = MilvusClient(uri=cluster.router_uri)
    collection_id = make_collection(client, name)
    victim = primary_of(cluster, collection_id, 1)
    client.insert(name, rows(keys_of(0, 10) + keys_of(1, 10), 1))
    acked = set(keys_of(0, 10) + keys_of(1, 10))

    try:
        victim.kill()  # the Milvus server process itself
        assert not port_accepts(victim.port), "the killed instance still accepts connections"
        deadline = time.time() + 30
        while _membership(cluster)[victim.identity].health != discovery_pb2.DOWN and time.time() < deadline:
            time.sleep(0.3)
        # writes to its shard are logged and acknowledged, as Milvus acknowledges once its queue holds them
        client.insert(name, rows(keys_of(1, 10, 5000), 2), **NO_RETRY)
        acked |= set(keys_of(1, 10, 5000))
        client.insert(name, rows(keys_of(0, 10, 5000), 3), **NO_RETRY)  # the other shard too
        acked |= set(keys_of(0, 10, 5000))
        # a Strong read cannot be served without the writes the down primary has not applied: it fails
        # within the client's deadline, with code 2 naming the shard, rather than miss them
        started = time.time()
        with pytest.raises(MilvusException) as err:
            client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=4, **NO_RETRY)
        assert time.time() - started < 6
        assert err.value.code == 2 and "shard 1" in err.value.message, err.value
        # a full backlog: meta restarted with the smallest limit, a write of more gets Milvus's rate-limit status
        meta = cluster.services["meta"]
        cluster.stop_service("meta")
        meta.env["WRITE_BACKLOG_LIMIT"] = str(1 << 20)
        try:
            cluster.start_service("meta")
            big = keys_of(1, 80000, 20000)  # about 21 bytes a row in the log: 50 000 rows fill 1 MiB
            with pytest.raises(MilvusException) as limited:
                for start in range(0, 80000, 5000):
                    client.insert(name, rows(big[start : start + 5000], 4), **NO_RETRY)
                    acked |= set(big[start : start + 5000])
            assert set(big[:5000]) <= acked, "the first 5 000 rows fit in the backlog"
            assert limited.value.code == 8 and "rate limit exceeded" in limited.value.message, limited.value
        finally:
            cluster.stop_service("meta")
            del meta.env["WRITE_BACKLOG_LIMIT"]
            cluster.start_service("meta")
    finally:
        # the session cluster stays whole for the tests after this one, whatever failed above
        if not victim.is_running():
            victim.start()
            victim.wait_ready(180)
    deadline = time.time() + 60
    while _membership(cluster)[victim.identity].health != discovery_pb2.HEALTHY and time.time() < deadline:
        time.sleep(0.3)
    assert count(client, name, timeout=120) == len(acked)  # the primary caught up; the Strong read waited for it
    wait_caught_up(cluster, collection_id)
    present = [pk for rows_ in copy_contents(cluster, collection_id) for pk, tags in rows_.items() for _ in tags]
    assert len(present) == len(set(present)), "a row was applied twice"
    assert set(present) == acked
    client.drop_collection(name)
    client.close()


def test_a_strong_read_waits_for_a_lagging_primary(cluster: Cluster, name: str) -> None:
    client = MilvusClient(uri=cluster.router_uri)
    collection_id = make_collection(client, name)
    client.insert(name, rows(keys_of(0, 5), 1))
    victim = primary_of(cluster, collection_id, 0)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGSTOP)  # the primary stops applying, without a lost connection
    try:
        client.insert(name, rows(keys_of(0, 5, 1000), 2), **NO_RETRY)  # acknowledged: it is in the log
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.append(count(client, name, timeout=60)))
        reader.start()
        time.sleep(2.0)
        assert not seen, "the Strong read did not wait for the primary"
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    reader.join(60)
    assert seen == [10]
    client.drop_collection(name)
    client.close()


def test_a_deadline_shorter_than_the_append_leaves_no_entry_waiting(cluster: Cluster, name: str) -> None:
    """The client gives up during the append; the write is logged in full or not at all, and applied without another write."""
    client = MilvusClient(uri=cluster.router_uri)
    collection_id = make_collection(client, name)
    vectors = np.random.default_rng(5).random((60000, DIM)).astype(np.float32)
    batch = [{"id": i, "vector": vectors[i].tolist(), "tag": 7} for i in range(60000)]
    with pytest.raises((MilvusException, grpc.RpcError)):  # pymilvus passes DEADLINE_EXCEEDED on as it is
        client.insert(name, batch, timeout=0.05, **NO_RETRY)
    wait_caught_up(cluster, collection_id)  # every copy applied the log's end: nothing left waiting
    assert count(client, name) in (0, 60000)
    client.drop_collection(name)
    client.close()


def test_meta_refuses_log_entries_that_do_not_decode_or_name_another_collection(cluster: Cluster, name: str) -> None:
    client = MilvusClient(uri=cluster.router_uri)
    collection_id = make_collection(client, name)
    wrong = milvus_pb2.InsertRequest(collection_name=f"mishards_{collection_id}_s1", num_rows=0).SerializeToString()
    with cluster.meta_channel() as channel:
        stub = meta_pb2_grpc.MetaStub(channel)
        for payload, why in ((b"\xff\x01garbage", "does not decode"), (wrong, "names")):
            answer = stub.AppendMutations(
                meta_pb2.AppendMutationsRequest(
                    collection_id=collection_id,
                    entries=[meta_pb2.MutationEntry(shard=0, method="Insert", request=payload)],
                ),
                timeout=30,
            )
            st = common_pb2.Status.FromString(answer.status)
            assert st.code == 1100 and why in st.reason, st
        assert [
            c.last_seq for c in stub.ListCopies(meta_pb2.ListCopiesRequest()).copies if c.collection_id == collection_id
        ] == [0, 0]
    client.insert(name, rows(keys_of(0, 3), 1))  # the shard is untouched
    assert count(client, name) == 3
    client.drop_collection(name)
    client.close()


def test_an_entry_the_primary_refuses_is_stuck_shown_and_skipped_by_an_operator(
    cluster: Cluster, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mishards.cli.main import main as mishards_cli

    client = MilvusClient(uri=cluster.router_uri)
    collection_id = make_collection(client, name)
    keys0 = keys_of(0, 3)
    # An entry the router's validation would have refused, logged behind its back: wrong dimension.
    bad = milvus_pb2.InsertRequest(collection_name=f"mishards_{collection_id}_s0", num_rows=1)
    bad.fields_data.add(type=schema_pb2.Int64, field_name="id").scalars.long_data.data.append(keys0[0])
    vec = bad.fields_data.add(type=schema_pb2.FloatVector, field_name="vector")
    vec.vectors.dim = DIM + 1
    vec.vectors.float_vector.data.extend([0.0] * (DIM + 1))
    bad.fields_data.add(type=schema_pb2.Int64, field_name="tag").scalars.long_data.data.append(0)
    with cluster.meta_channel() as channel:
        stub = meta_pb2_grpc.MetaStub(channel)
        answer = stub.AppendMutations(
            meta_pb2.AppendMutationsRequest(
                collection_id=collection_id,
                entries=[meta_pb2.MutationEntry(shard=0, method="Insert", request=bad.SerializeToString())],
            ),
            timeout=60,
        )
        assert not answer.status, "a logged write is acknowledged once durable"
        deadline = time.time() + 30
        while time.time() < deadline:
            mine = [
                c
                for c in stub.ListCopies(meta_pb2.ListCopiesRequest()).copies
                if c.collection_id == collection_id and c.shard == 0
            ]
            if mine[0].stuck:
                break
            time.sleep(0.3)
        assert mine[0].stuck_seq == 1 and "rejected by" in mine[0].stuck, mine
    # other clients' writes to the shard are still acknowledged (they wait behind the entry)
    client.insert(name, rows([keys0[1]], 2), **NO_RETRY)
    assert (
        mishards_cli(
            [
                "status",
                "--data",
                str(cluster.root_dir),
                "--meta",
                cluster.meta_address,
                "--discovery",
                cluster.discovery_address,
            ]
        )
        == 0
    )
    assert "stuck at entry 1" in capsys.readouterr().out
    assert (
        mishards_cli(
            [
                "repair",
                "--data",
                str(cluster.root_dir),
                "--meta",
                cluster.meta_address,
                "--collection-id",
                str(collection_id),
                "--shard",
                "0",
                "--instance",
                mine[0].instance,
                "--action",
                "skip",
            ]
        )  # fmt: skip
        == 0
    )
    assert count(client, name) == 1  # the refused row is gone, the later one applied
    client.drop_collection(name)
    client.close()


# "default": the collection's level is Session and reads name none (pymilvus then sends
# use_default_consistency with the timestamp of its last write).
@pytest.mark.parametrize("level", ["Session", "Strong", "default"])
def test_reads_see_own_writes(cluster: Cluster, name: str, level: str) -> None:
    client = MilvusClient(uri=cluster.router_uri)
    client.create_collection(name, dimension=DIM, consistency_level="Session" if level == "default" else "Bounded")
    at: dict[str, Any] = {} if level == "default" else {"consistency_level": level}
    for round_ in range(3):
        ids = list(range(round_ * 100, round_ * 100 + 50))
        client.insert(name, [{"id": i, "vector": [1.0, float(i), float(i * i % 17), 3.0]} for i in ids])
        count = client.query(name, filter="", output_fields=["count(*)"], **at)[0]["count(*)"]
        assert count == (round_ + 1) * 50
        last = ids[-1]
        hits = client.search(name, data=[[1.0, float(last), float(last * last % 17), 3.0]], limit=1, **at)
        assert hits[0][0]["id"] == ids[-1]
    client.delete(name, ids=list(range(10)))
    count = client.query(name, filter="", output_fields=["count(*)"], **at)[0]["count(*)"]
    assert count == 140
    # Eventually may lag; it must still answer
    client.query(name, filter="", output_fields=["count(*)"], consistency_level="Eventually")
    client.drop_collection(name)
    client.close()
