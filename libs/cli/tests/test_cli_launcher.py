"""Instance records and one real embedded Milvus (start, pymilvus, crash, stop)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mishards.cli.launcher import (
    RECORD_FILE,
    EmbeddedMilvus,
    InstanceError,
    LiteMilvus,
    instance_dir,
    open_instances,
    read_record,
    write_record,
)
from mishards.cli.ports import PortAllocator


def test_record_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "instance.json"
    assert read_record(path) is None
    write_record(path, {"ports": {"proxy_port": 19600}, "role": "writable"})
    assert read_record(path) == {"ports": {"proxy_port": 19600}, "role": "writable"}
    path.write_text("[1, 2]")
    with pytest.raises(InstanceError):
        read_record(path)


def test_open_reuses_recorded_ports(tmp_path: Path) -> None:
    taken: set[int] = set()
    first = EmbeddedMilvus.open(tmp_path / "wo-0", "writable", PortAllocator(taken=taken))
    assert len(set(first.ports.values())) == 12
    record = read_record(tmp_path / "wo-0" / RECORD_FILE)
    assert record is not None and record["ports"] == first.ports
    # Another process (fresh allocator) finds the same ports.
    again = EmbeddedMilvus.open(tmp_path / "wo-0", "writable", PortAllocator(taken=set()))
    assert again.ports == first.ports
    assert again.address == f"127.0.0.1:{first.ports['proxy_port']}" == again.identity
    with pytest.raises(InstanceError, match="use the same --backend"):
        LiteMilvus.open(tmp_path / "wo-0", "writable", PortAllocator(taken=set()))


def test_open_instances_layout_and_distinct_ports(tmp_path: Path) -> None:
    insts = open_instances(tmp_path, 2, 1, "milvus-lite", allocator=PortAllocator(taken=set()))
    assert [i.data_dir for i in insts] == [
        instance_dir(tmp_path, "writable", 0),
        instance_dir(tmp_path, "writable", 1),
        instance_dir(tmp_path, "readonly", 0),
    ]
    assert [i.role for i in insts] == ["writable", "writable", "readonly"]
    assert len({i.port for i in insts}) == 3
    # More read-only instances later: recorded ports are kept, new ones never collide.
    more = open_instances(tmp_path, 2, 2, "milvus-lite", allocator=PortAllocator(taken=set()))
    assert [i.port for i in more[:3]] == [i.port for i in insts]
    assert more[3].port not in {i.port for i in insts}
    assert all(i.pid is None and not i.is_running() for i in more)


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedMilvus]:
    inst = EmbeddedMilvus.open(tmp_path / "wo-0", "writable", PortAllocator())
    try:
        yield inst
    finally:
        inst.stop(timeout=10)


@pytest.mark.timeout(240)
def test_embedded_milvus_serves_and_crashes(embedded: EmbeddedMilvus) -> None:
    from pymilvus import MilvusClient

    embedded.start()
    embedded.wait_ready(timeout=180)
    pid = embedded.pid
    assert pid is not None and embedded.is_running()
    client = MilvusClient(uri=embedded.uri)
    try:
        client.create_collection("launcher_smoke", dimension=4)
        assert "launcher_smoke" in client.list_collections()
    finally:
        client.close()

    embedded.kill()
    assert not embedded.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _refuses(embedded.port)
    embedded.stop(timeout=5)  # after a crash, stop only cleans up
