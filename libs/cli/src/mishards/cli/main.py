"""The operator CLI: ``mishards up`` runs the embedded cluster, ``mishards status`` shows it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import grpc

from mishards.cli.cluster import (
    BACKEND_TOKEN_FILE,
    CLUSTER_FILE,
    DEFAULT_ROUTER_PORT,
    DEFAULT_SERVICE_PORTS,
    TOKEN_FILE,
    Cluster,
    ServiceError,
    backend_token,
    grpc_serving,
)
from mishards.cli.launcher import (
    BACKENDS,
    InstanceError,
    MilvusInstance,
    bring_up_instances,
    read_record,
    stop_instances,
)
from mishards.cli.ports import LOCALHOST, PortRangeExhausted
from mishards.common.security import InternalSecurity, TlsFiles


def build_parser() -> argparse.ArgumentParser:
    """The ``mishards`` argument parser (subcommands ``up`` and ``status``)."""
    parser = argparse.ArgumentParser(prog="mishards", description="Mishards: a sharding middleware for Milvus 2.x")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run meta, discovery, router and Milvus here")
    up.add_argument("--data", default="./data", help="data folder (default ./data)")
    up.add_argument("--writable", type=_count, default=2, help="writable instances")
    up.add_argument("--readonly", type=_count, default=0, help="read-only instances")
    up.add_argument("--backend", choices=sorted(BACKENDS), default="milvus")
    up.add_argument("--port", type=_port, default=DEFAULT_ROUTER_PORT, help="router port (0: any)")
    up.add_argument(
        "--router-workers",
        type=_workers,
        default=1,
        metavar="N",
        help="router processes sharing the router port (ROUTER_WORKERS; default 1)",
    )
    up.add_argument(
        "--add-readonly",
        type=_count,
        default=0,
        metavar="N",
        help="add N read-only instances to the cluster already running on --data (until Ctrl-C)",
    )

    status = sub.add_parser("status", help="show the discovery membership")
    status.add_argument("--meta", help="meta address host:port")
    status.add_argument("--discovery", help="discovery address host:port")
    status.add_argument(
        "--data",
        default="./data",
        help="data folder of `mishards up`, read for addresses not given",
    )
    repair = sub.add_parser(
        "repair", help="retry a copy's stuck log entry now (retry), or abort it, recorded in the log (skip)"
    )
    repair.add_argument("--meta", help="meta address host:port")
    repair.add_argument("--data", default="./data", help="data folder of `mishards up`, read for the meta address")
    repair.add_argument("--collection-id", type=int, required=True)
    repair.add_argument("--shard", type=int, required=True)
    repair.add_argument("--instance", required=True, help="instance identity of the stuck copy")
    repair.add_argument("--action", choices=("retry", "skip"), required=True)
    for name, what in (
        ("promote", "make a ready replica the shard's primary (a planned switch when the primary is healthy)"),
        ("move", "move the shard's primary to another writable instance (copy, catch up, switch, drop the old copy)"),
    ):
        op = sub.add_parser(name, help=what)
        op.add_argument("collection")
        op.add_argument("shard", type=int)
        op.add_argument("--to", required=name == "move", default="", help="instance identity")
        op.add_argument("--db", default="default", help="database of the collection")
        op.add_argument("--meta", help="meta address host:port")
        op.add_argument("--data", default="./data", help="data folder of `mishards up`, read for the meta address")
    drain = sub.add_parser("drain", help="move every primary and replica off an instance before it is removed")
    drain.add_argument("instance", help="instance identity")
    drain.add_argument("--undo", action="store_true", help="stop draining the instance")
    drain.add_argument("--meta", help="meta address host:port")
    drain.add_argument("--data", default="./data", help="data folder of `mishards up`, read for the meta address")
    return parser


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be 1-64")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port 0-65535")
    return value


# -- up -------------------------------------------------------------------------


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def cmd_up(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the cluster in the foreground until Ctrl-C or SIGTERM."""
    out = out or sys.stdout
    if args.add_readonly:
        return cmd_add_readonly(args, out)
    cluster = Cluster(
        args.data,
        writable=args.writable,
        readonly=args.readonly,
        backend=args.backend,
        router_port=args.port,
        prefer_default_ports=True,
        router_workers=args.router_workers,
    )
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        print(f"Starting Mishards in {cluster.root_dir} ...", file=out, flush=True)
        cluster.start()
        print(describe_cluster(cluster), file=out, flush=True)
        _watch(cluster, out)
    except _Stop:
        pass
    except (ServiceError, InstanceError, PortRangeExhausted) as exc:
        print(f"mishards up failed: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        print("Stopping Mishards ...", file=out, flush=True)
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Mishards stopped.", file=out, flush=True)
    return code


def cmd_add_readonly(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Start read-only instances, announce them to a running cluster, withdraw them on Ctrl-C."""
    out = out or sys.stdout
    import yaml

    from mishards.cli.launcher import instance_dir
    from mishards.cli.ports import PortAllocator

    root = Path(args.data).absolute()
    listing = root / "instances.yaml"
    if not listing.exists():
        print(f"mishards up --add-readonly: no running cluster in {root} (start one with mishards up)", file=sys.stderr)
        return 1
    announced = {str(row.get("address")) for row in yaml.safe_load(listing.read_text()) or []}
    allocator = PortAllocator()
    added: list[MilvusInstance] = []
    index = 0
    while len(added) < args.add_readonly:
        folder = instance_dir(root, "readonly", index)
        index += 1
        record = read_record(folder / "instance.json") or {}
        ports = record.get("ports") if isinstance(record, dict) else None
        if isinstance(ports, dict) and f"{LOCALHOST}:{ports.get('proxy_port', ports.get('port'))}" in announced:
            continue  # that folder belongs to an instance the cluster runs
        added.append(BACKENDS[args.backend].open(folder, "readonly", allocator))
        added[-1].token = backend_token(root, args.backend)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def publish(extra: list[str], gone: set[str]) -> None:
        rows = [r for r in yaml.safe_load(listing.read_text()) or [] if str(r.get("address")) not in gone]
        rows += [{"address": a, "role": "readonly"} for a in extra]
        tmp = listing.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(rows) if rows else "[]\n")
        os.replace(tmp, listing)

    code = 0
    try:
        bring_up_instances(added, 180.0)
        publish([i.address for i in added], set())
        for inst in added:
            print(f"  readonly   {inst.address}  pid {inst.pid}  joined ({inst.data_dir})", file=out, flush=True)
        print("Read-only instances added; replicas are being placed (see mishards status). Ctrl-C withdraws them.",
              file=out, flush=True)  # fmt: skip
        while True:
            time.sleep(1.0)
    except _Stop:
        pass
    except (InstanceError, PortRangeExhausted) as exc:
        print(f"mishards up --add-readonly failed: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        if listing.exists():
            publish([], {i.address for i in added})
        stop_instances(added)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def describe_cluster(cluster: Cluster) -> str:
    """The lines `mishards up` prints once the cluster serves."""
    lines = [
        f'Mishards is up: pymilvus -> MilvusClient(uri="{cluster.router_uri}")',
        f"  router     {cluster.router_address}  pid {cluster.service_pid('router')}{_workers_note(cluster)}",
        f"  meta       {cluster.meta_address}  pid {cluster.service_pid('meta')}",
        f"  discovery  {cluster.discovery_address}  pid {cluster.service_pid('discovery')}",
    ]
    for inst in cluster.instances:
        lines.append(f"  {inst.role:<9}  {inst.address}  pid {inst.pid}  ({inst.backend}, {inst.data_dir})")
    lines.append(f"  logs in {cluster.log_dir}")
    lines.append(f"  internal token in {cluster.root_dir / TOKEN_FILE} (mode 0600; the CLI reads it from --data)")
    if cluster.backend_token:
        lines.append(
            f"  the Milvus instances require MILVUS_BACKEND_TOKEN, in {cluster.root_dir / BACKEND_TOKEN_FILE} (mode 0600)"
        )
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def _workers_note(cluster: Cluster) -> str:
    return f" (supervisor of {cluster.router_workers} workers)" if cluster.router_workers > 1 else ""


def _watch(cluster: Cluster, out: TextIO) -> None:
    """Wait for a signal; report (once) any child that exits on its own."""
    reported: set[str] = set()
    while True:
        time.sleep(1.0)
        for name, service in cluster.services.items():
            if not service.is_running() and name not in reported:
                reported.add(name)
                print(f"warning: {name} (pid {service.pid}) exited; see {service.log_file}",
                      file=out, flush=True)  # fmt: skip
        for inst in cluster.instances:
            if not inst.is_running() and inst.identity not in reported:
                reported.add(inst.identity)
                print(f"warning: {inst.role} instance {inst.address} (pid {inst.pid}) "
                      f"exited; see {inst.log_file}", file=out, flush=True)  # fmt: skip


# -- status ---------------------------------------------------------------------


def resolve_addresses(args: argparse.Namespace) -> tuple[str, str]:
    """(meta, discovery) addresses: the flags, else the data folder's record, else the defaults."""
    record = read_record(Path(args.data) / CLUSTER_FILE) or {}
    recorded = record.get("ports")
    ports = recorded if isinstance(recorded, dict) else {}
    meta_port = ports.get("meta", DEFAULT_SERVICE_PORTS["meta"])
    discovery_port = ports.get("discovery", DEFAULT_SERVICE_PORTS["discovery"])
    meta = args.meta or f"{LOCALHOST}:{meta_port}"
    discovery = getattr(args, "discovery", None) or f"{LOCALHOST}:{discovery_port}"
    return meta, discovery


def resolve_security(args: argparse.Namespace) -> InternalSecurity:
    """The internal token (MISHARDS_INTERNAL_TOKEN, else the data folder's) and TLS files (TLS_* variables)."""
    token = os.environ.get("MISHARDS_INTERNAL_TOKEN", "")
    if not token:
        try:
            token = (Path(args.data) / TOKEN_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
    env = os.environ
    tls = TlsFiles(
        env.get("TLS_CERT_FILE", ""), env.get("TLS_KEY_FILE", ""), env.get("TLS_CLIENT_CA_FILE", ""),
        env.get("TLS_CA_FILE", ""),
    )  # fmt: skip
    return InternalSecurity(token=token, tls=tls)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned text table."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the discovery membership; exit 1 when discovery does not answer."""
    out = out or sys.stdout
    from mishards.v1 import discovery_pb2, discovery_pb2_grpc

    meta, discovery = resolve_addresses(args)
    security = resolve_security(args)
    meta_state = "SERVING" if grpc_serving(meta, security=security) else "not serving"
    print(f"meta       {meta}: {meta_state}", file=out)
    try:
        with security.sync_channel(discovery) as channel:
            stub = discovery_pb2_grpc.DiscoveryStub(channel)  # type: ignore[no-untyped-call]
            membership = stub.ListInstances(discovery_pb2.ListInstancesRequest(), timeout=5)
    except grpc.RpcError as exc:
        print(f"discovery  {discovery}: unreachable ({exc.code().name})", file=out)
        return 1
    state = "ok" if membership.backend_ok else f"back end error: {membership.backend_error}"
    print(f"discovery  {discovery}: version {membership.version}, {state}", file=out)
    rows = [
        (
            inst.identity,
            inst.address,
            _enum_label(discovery_pb2.Role.Name(inst.role)),
            _enum_label(discovery_pb2.Health.Name(inst.health)),
            inst.reason,
        )
        for inst in membership.instances
    ]
    print(
        format_table(("IDENTITY", "ADDRESS", "ROLE", "HEALTH", "REASON"), rows),
        file=out,
    )
    print_copies(meta, out, security)
    return 0


def print_copies(meta: str, out: TextIO, security: InternalSecurity | None = None) -> None:
    """The copies of every shard: instance, role, state, applied log position and lag."""
    from mishards.v1 import meta_pb2, meta_pb2_grpc

    try:
        with (security or InternalSecurity()).sync_channel(meta) as channel:
            answer = meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=5)  # type: ignore[no-untyped-call]
    except grpc.RpcError as exc:
        print(f"copies: meta unreachable ({exc.code().name})", file=out)
        return
    print(f"\nmutation log: {answer.log_entries} entries held", file=out)
    rows = [
        (
            f"{c.db_name}.{c.collection}" if c.collection else str(c.collection_id),
            str(c.shard),
            c.instance,
            c.role,
            c.state,
            str(c.applied_seq),
            str(c.last_seq - c.applied_seq),
            copy_note(c),
        )
        for c in answer.copies
    ]
    print(
        format_table(("COLLECTION", "SHARD", "INSTANCE", "ROLE", "STATE", "APPLIED", "LAG", "REASON"), rows), file=out
    )
    print_moves(answer, out)


def copy_note(c: Any) -> str:
    """What is wrong with a copy, if anything: a refused entry first, then an instance that does not answer."""
    if c.stuck:
        return f"stuck at entry {c.stuck_seq} (retrying; `mishards repair --action skip` drops it): {c.stuck}"
    if c.unavailable:
        return f"not applying (retrying): {c.unavailable}"
    return str(c.reason)


def cmd_repair(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Ask meta to retry or skip the entry a stuck copy stopped at."""
    out = out or sys.stdout
    from mishards.v1 import meta_pb2, meta_pb2_grpc

    meta, _ = resolve_addresses(args)
    request = meta_pb2.RepairShardRequest(
        collection_id=args.collection_id, shard=args.shard, instance=args.instance, action=args.action
    )
    try:
        with resolve_security(args).sync_channel(meta) as channel:
            answer = meta_pb2_grpc.MetaStub(channel).RepairShard(request, timeout=30)  # type: ignore[no-untyped-call]
    except grpc.RpcError as exc:
        print(f"repair failed: {exc.details()}", file=out)
        return 1
    print(answer.message, file=out)
    return 0


def cmd_operator(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`promote`, `move` and `drain`: meta does the work and says what it started."""
    out = out or sys.stdout
    from mishards.v1 import meta_pb2, meta_pb2_grpc

    meta, _ = resolve_addresses(args)
    try:
        with resolve_security(args).sync_channel(meta) as channel:
            stub = meta_pb2_grpc.MetaStub(channel)  # type: ignore[no-untyped-call]
            if args.command == "drain":
                answer = stub.DrainInstance(
                    meta_pb2.DrainInstanceRequest(instance=args.instance, undo=args.undo), timeout=30
                )
            else:
                request = meta_pb2.ShardOperationRequest(
                    db_name=args.db, collection=args.collection, shard=args.shard, to=args.to
                )
                call = stub.PromoteShard if args.command == "promote" else stub.MoveShard
                answer = call(request, timeout=120)
    except grpc.RpcError as exc:
        print(f"{args.command} failed: {exc.details()}", file=out)
        return 1
    print(answer.message, file=out)
    return 0


def progress_bar(fraction: float, width: int = 20) -> str:
    done = int(round(max(0.0, min(1.0, fraction)) * width))
    return "[" + "#" * done + "." * (width - done) + f"] {100 * fraction:3.0f}%"


def print_moves(answer: Any, out: TextIO) -> None:
    """Shard moves and drains in flight: a progress bar in a terminal, plain lines when piped."""
    bar = out.isatty()
    for m in answer.moves:
        if m.phase == "done":
            print(f"moved {m.collection} shard {m.shard}: {m.source} -> {m.target} in {m.seconds:.1f}s "
                  f"(primary held {1000 * m.switch_seconds:.0f} ms)", file=out)  # fmt: skip
            continue
        done = progress_bar(m.progress) if bar else f"{100 * m.progress:.0f}% copied"
        print(f"move  {m.collection} shard {m.shard}: {m.source} -> {m.target}  {m.phase}  {done}  "
              f"({m.seconds:.0f}s)", file=out)  # fmt: skip
    for d in answer.draining:
        state = "drained: it may be removed" if d.copies_left == 0 else f"{d.copies_left} copies left"
        print(f"drain {d.instance}: {state}", file=out)


def _enum_label(name: str) -> str:
    # ROLE_UNSPECIFIED -> unspecified, HEALTH_UNKNOWN -> unknown, WRITABLE -> writable.
    return name.split("_", 1)[1].lower() if "_" in name else name.lower()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mishards`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "up":
        return cmd_up(args)
    if args.command == "repair":
        return cmd_repair(args)
    if args.command in ("promote", "move", "drain"):
        return cmd_operator(args)
    return cmd_status(args)


if __name__ == "__main__":
    sys.exit(main())
