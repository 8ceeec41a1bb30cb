"""Argument parsing and `mishards status` against an in-process discovery."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from mishards.cli.main import build_parser, cmd_status, format_table, resolve_addresses
from mishards.v1 import discovery_pb2, discovery_pb2_grpc


def test_up_defaults() -> None:
    args = build_parser().parse_args(["up"])
    assert (args.data, args.writable, args.readonly, args.backend, args.port) == (
        "./data",
        2,
        0,
        "milvus",
        19530,
    )
    assert args.router_workers == 1


def test_up_options() -> None:
    args = build_parser().parse_args(
        [
            "up",
            "--data",
            "/x",
            "--writable",
            "1",
            "--readonly",
            "3",
            "--backend",
            "milvus-lite",
            "--port",
            "0",
            "--router-workers",
            "3",
        ]
    )
    assert args.router_workers == 3
    assert (args.data, args.writable, args.readonly, args.backend, args.port) == (
        "/x",
        1,
        3,
        "milvus-lite",
        0,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["up", "--writable", "-1"],
        ["up", "--backend", "etcd"],
        ["up", "--port", "70000"],
        ["up", "--router-workers", "0"],
        ["up", "--router-workers", "65"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2


def test_status_addresses_default_and_flags(tmp_path: object) -> None:
    args = build_parser().parse_args(["status", "--data", str(tmp_path)])
    assert resolve_addresses(args) == ("127.0.0.1:19541", "127.0.0.1:19542")
    args = build_parser().parse_args(["status", "--meta", "h:1", "--discovery", "h:2"])
    assert resolve_addresses(args) == ("h:1", "h:2")


class FakeDiscovery(discovery_pb2_grpc.DiscoveryServicer):
    def ListInstances(self, request: object, context: object) -> discovery_pb2.Membership:
        return discovery_pb2.Membership(
            version=7,
            backend_ok=True,
            instances=[
                discovery_pb2.Instance(
                    identity="a:1",
                    address="a:1",
                    role=discovery_pb2.WRITABLE,
                    health=discovery_pb2.HEALTHY,
                ),
                discovery_pb2.Instance(
                    identity="b:2",
                    address="b:2",
                    role=discovery_pb2.READONLY,
                    health=discovery_pb2.DOWN,
                    reason="connection refused",
                ),
            ],
        )


@pytest.fixture
def discovery_address() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    discovery_pb2_grpc.add_DiscoveryServicer_to_server(FakeDiscovery(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_status_prints_the_membership(discovery_address: str) -> None:
    out = io.StringIO()
    args = build_parser().parse_args(["status", "--discovery", discovery_address, "--meta", "127.0.0.1:1"])
    assert cmd_status(args, out) == 0
    lines = out.getvalue().splitlines()
    assert "not serving" in lines[0]
    assert "version 7, ok" in lines[1]
    assert lines[2].split() == ["IDENTITY", "ADDRESS", "ROLE", "HEALTH", "REASON"]
    assert lines[3].split() == ["a:1", "a:1", "writable", "healthy"]
    assert lines[4].split() == [
        "b:2",
        "b:2",
        "readonly",
        "down",
        "connection",
        "refused",
    ]


def test_status_unreachable_exits_1() -> None:
    out = io.StringIO()
    args = build_parser().parse_args(["status", "--discovery", "127.0.0.1:1", "--meta", "127.0.0.1:1"])
    assert cmd_status(args, out) == 1
    assert "unreachable" in out.getvalue()


def test_format_table() -> None:
    assert format_table(("A", "BB"), [("xyz", "1")]) == "A    BB\nxyz  1"


def test_status_says_why_a_copy_is_behind() -> None:
    from mishards.cli.main import copy_note
    from mishards.v1 import meta_pb2

    stuck = meta_pb2.CopyState(stuck="entry 7 (Insert) rejected by wo: code 1100: bad", stuck_seq=7, unavailable="x")
    assert copy_note(stuck).startswith("stuck at entry 7 (retrying; `mishards repair --action skip` drops it): entry 7")
    assert (
        copy_note(meta_pb2.CopyState(unavailable="UNAVAILABLE: refused"))
        == "not applying (retrying): UNAVAILABLE: refused"
    )
    assert copy_note(meta_pb2.CopyState(reason="lag 12000")) == "lag 12000"


def test_status_shows_moves_with_a_bar_in_a_terminal_and_plain_lines_when_piped() -> None:
    import io

    from mishards.cli.main import print_moves
    from mishards.v1 import meta_pb2

    answer = meta_pb2.ListCopiesResponse()
    answer.moves.add(collection="c", shard=1, source="a", target="b", phase="copying", progress=0.5, seconds=3)
    answer.moves.add(collection="c", shard=0, source="a", target="b", phase="done", seconds=9.5, switch_seconds=0.042)
    answer.draining.add(instance="a", copies_left=2)
    answer.draining.add(instance="z", copies_left=0)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    piped, terminal = io.StringIO(), Terminal()
    print_moves(answer, piped)
    print_moves(answer, terminal)
    assert "move  c shard 1: a -> b  copying  50% copied  (3s)" in piped.getvalue()
    assert "[##########..........]  50%" in terminal.getvalue() and "#" not in piped.getvalue()
    assert "moved c shard 0: a -> b in 9.5s (primary held 42 ms)" in piped.getvalue()
    assert "drain a: 2 copies left" in piped.getvalue() and "drain z: drained: it may be removed" in piped.getvalue()
