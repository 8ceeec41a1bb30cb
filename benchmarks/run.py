"""`make bench`: direct Milvus vs a bare forwarding hop vs the router, measured alternately.

    python -m benchmarks.run [--preset small|standard|large] [--configs 1shard,2shards,tenants]
                             [--soak-minutes 10] [--no-scaling] [--no-milvus] [--profile auto|always|never]
                             [--router-auth]

See docs/performance.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymilvus import MilvusClient

from benchmarks import profile
from benchmarks.configs import CONFIGS, ClusterConfig
from benchmarks.measure import Block, alternate, latency_block, session_block, throughput_block, write_block
from benchmarks.presets import PRESETS, Preset
from benchmarks.processes import Child
from benchmarks.procstat import rss_bytes
from benchmarks.report import (
    evaluate_cross_targets,
    evaluate_targets,
    print_config_table,
    print_scaling_table,
    print_targets,
    ratios,
)
from benchmarks.scaling import run_scaling
from benchmarks.workload import (
    FLAT_COLLECTION,
    SEARCH_COLLECTION,
    WRITE_COLLECTION,
    Arm,
    Operations,
    WriteCursor,
    brute_force_top,
    build_index_and_load,
    create_collection,
    insert_all,
    recall_at_k,
    vectors,
)
from mishards.cli.cluster import Cluster
from mishards.cli.launcher import grpc_milvus_healthy
from mishards.cli.ports import LOCALHOST, ephemeral_allocator

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# the router's credentials with --router-auth (meta's first root password, ROOT_PASSWORD's default)
ROUTER_ROOT_TOKEN = "root:Milvus"

# name, kind, unit, concurrency
METRICS: tuple[tuple[str, str, str, int], ...] = (
    ("search_c1", "latency", "searches", 1),
    ("search_c8", "throughput", "searches", 8),
    ("search_c32", "throughput", "searches", 32),
    ("search_nq100", "latency", "searches", 1),
    ("search_strong", "latency", "searches", 1),
    ("search_session", "session", "searches", 1),
    ("query_filter", "latency", "queries", 1),
    ("count", "latency", "queries", 1),
    ("insert", "write", "rows", 1),
    ("upsert", "write", "rows", 1),
    ("delete", "write", "rows", 1),
    ("insert_w4", "write", "rows", 4),
    ("upsert_w4", "write", "rows", 4),
    ("delete_w4", "write", "rows", 4),
)


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.rstrip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "services", "libs").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "unknown", "dirty_paths": changed}


def block_runner(
    name: str, kind: str, conc: int, ops: Operations, preset: Preset
) -> tuple[Callable[[Arm, int], Block], Callable[[Arm], Any]]:
    if kind == "write":
        prepare = {"insert": ops.insert_rows, "upsert": ops.upsert_rows, "delete": ops.delete_rows}[name.split("_")[0]]
        batches = preset.write_batches * conc  # every writer writes as many batches as the single one
        return (
            lambda a, r: write_block(a, prepare, batches, first=r * batches, writers=conc, settle=ops.settle_writes),
            lambda a: write_block(a, prepare, conc, first=100_000 + 1000 * conc, writers=conc),
        )
    if kind == "session":
        return (
            lambda a, r: session_block(
                a, ops.write_one, ops.search(1, "Session"), preset.read_seconds, first=r * 100_000
            ),
            lambda a: session_block(a, ops.write_one, ops.search(1, "Session"), 0.3, first=900_000),
        )
    op = {
        "search_c1": ops.search(1),
        "search_c8": ops.search(1),
        "search_c32": ops.search(1),
        "search_nq100": ops.search(100),
        "search_strong": ops.search(1, "Strong"),
        "query_filter": ops.query_filter,
        "count": ops.count,
    }[name]
    if kind == "latency":
        return (
            lambda a, r: latency_block(a, op, preset.read_seconds, first=r * 100_000),
            lambda a: latency_block(a, op, 0.3),
        )
    return (
        lambda a, r: throughput_block(a, op, preset.read_seconds, conc),
        lambda a: throughput_block(a, op, 0.3, conc),
    )


def soak(arm: Arm, ops: Operations, pid: int, minutes: float) -> dict[str, Any]:
    """A mixed run against the router; the router's RSS sampled every 15 s."""
    print(f"  soak: {minutes:g} min mixed load on the router (4 search threads + 1 writer)")
    stop = threading.Event()
    errors: list[BaseException] = []
    search = ops.search(1)

    def searcher(w: int) -> None:
        i = w * 1_000_003
        while not stop.is_set():
            try:
                search(arm, i)
            except BaseException as exc:
                errors.append(exc)
                return
            i += 1

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                for prep in (ops.insert_rows, ops.upsert_rows, ops.delete_rows):
                    prep(arm, i)()
                ops.query_filter(arm, i)
                ops.count(arm, i)
            except BaseException as exc:
                errors.append(exc)
                return
            i += 1

    samples: list[tuple[float, float]] = [(0.0, rss_bytes(pid) / 2**20)]
    threads = [threading.Thread(target=searcher, args=(w,), daemon=True) for w in range(4)]
    threads.append(threading.Thread(target=writer, daemon=True))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        while (elapsed := time.monotonic() - t0) < minutes * 60 and not errors:
            time.sleep(min(15.0, max(0.1, minutes * 60 - elapsed)))
            samples.append((time.monotonic() - t0, rss_bytes(pid) / 2**20))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    if errors:
        raise errors[0]
    # "Start" is after the first minute (or the first sample): caches and pools fill up first.
    start = next((mb for s, mb in samples if s >= 60.0), samples[1][1] if len(samples) > 1 else samples[0][1])
    return {
        "minutes": minutes,
        "rss_mb_before": samples[0][1],
        "rss_mb_start": start,
        "rss_mb_end": samples[-1][1],
        "samples": samples,
    }


def load_data(clients: dict[str, MilvusClient], cfg: ClusterConfig, preset: Preset, data: Any) -> dict[str, Any]:
    """The same vectors and HNSW index in the direct collection and behind the router; FLAT behind the router."""
    timings: dict[str, Any] = {}
    direct, router = clients["direct"], clients["router"]
    sides = (("direct", direct, 1), ("router", router, cfg.shards))
    for side, client, shards in sides:
        create_collection(client, SEARCH_COLLECTION, preset, shards, cfg.tenants)
        timings[f"insert_{side}_s"] = insert_all(client, SEARCH_COLLECTION, data, preset.batch_rows, cfg.tenants)
        client.flush(SEARCH_COLLECTION)
    create_collection(router, FLAT_COLLECTION, preset, cfg.shards, cfg.tenants)
    insert_all(router, FLAT_COLLECTION, data[: preset.flat_rows], preset.batch_rows, cfg.tenants)
    router.flush(FLAT_COLLECTION)
    t0 = time.perf_counter()
    # Index builds of both sides overlap on the instance; waiting is per collection.
    for side, client, _ in sides:
        build_index_and_load(client, SEARCH_COLLECTION, preset, "HNSW", len(data))
        timings[f"index_and_load_{side}_s"] = time.perf_counter() - t0
    build_index_and_load(router, FLAT_COLLECTION, preset, "FLAT", preset.flat_rows)
    for _side, client, shards in sides:
        create_collection(client, WRITE_COLLECTION, preset, shards, cfg.tenants)
        build_index_and_load(client, WRITE_COLLECTION, preset, "FLAT", 0)  # writes end with a Strong count
    return timings


def check_recall(clients: dict[str, MilvusClient], preset: Preset, data: Any) -> dict[str, float]:
    queries = vectors(preset, 1000, 1)[: preset.recall_queries]
    truth = brute_force_top(data, queries, preset.topk)
    truth_flat = brute_force_top(data[: preset.flat_rows], queries, preset.topk)
    return {
        "flat_router": recall_at_k(clients["router"], FLAT_COLLECTION, queries, truth_flat, preset),
        "hnsw_router": recall_at_k(clients["router"], SEARCH_COLLECTION, queries, truth, preset),
        "hnsw_direct": recall_at_k(clients["direct"], SEARCH_COLLECTION, queries, truth, preset),
    }


def wait_replicas_ready(cluster: Cluster, collection: str, count: int, timeout: float = 3600.0) -> None:
    """Until `count` replica copies of `collection` are ready and caught up (meta's ListCopies)."""

    from mishards.v1 import meta_pb2, meta_pb2_grpc

    deadline = time.time() + timeout
    with cluster.meta_channel() as channel:
        stub = meta_pb2_grpc.MetaStub(channel)
        while time.time() < deadline:
            copies = stub.ListCopies(meta_pb2.ListCopiesRequest(), timeout=10).copies
            ready = [
                c for c in copies
                if c.collection == collection and c.role == "replica" and c.state == "ready"
                and c.applied_seq == c.last_seq
            ]  # fmt: skip
            if len(ready) >= count:
                return
            time.sleep(0.25)
    raise TimeoutError("replicas did not become ready")


def measured_metrics(cfg: ClusterConfig) -> tuple[tuple[str, str, str, int], ...]:
    """The rows of METRICS a configuration measures (all unless it names its own)."""
    if cfg.metrics is None:
        return METRICS
    return tuple(m for m in METRICS if m[0] in cfg.metrics)


def run_config(
    cfg: ClusterConfig, preset: Preset, ops: Operations, data: Any, args: argparse.Namespace, stamp: str
) -> dict[str, Any]:
    print(
        f"\n=== {cfg.name}: {cfg.description} ({cfg.shards} shard(s), {cfg.writable} writable, {cfg.readonly} read-only)"
    )
    root = Path(tempfile.mkdtemp(prefix=f"mishards-bench-{cfg.name}-"))
    cluster = Cluster(
        root,
        writable=cfg.writable,
        readonly=0,  # read-only instances join after the load: their fill of the full data set is timed
        backend="milvus",
        router_port=0,
        extra_env={
            "DEFAULT_SHARDS_NUM": str(cfg.shards),
            "READ_REPLICAS": str(cfg.readonly),
            "LOG_LEVEL": "WARNING",
            **({"AUTHORIZATION_ENABLED": "true"} if args.router_auth else {}),
        },
    )
    forwarder: Child | None = None
    clients: dict[str, MilvusClient] = {}
    result: dict[str, Any] = {"config": cfg.__dict__}
    ok = False
    try:
        t0 = time.perf_counter()
        cluster.start()
        inst = cluster.instances[0]
        port = ephemeral_allocator().allocate_one()
        forwarder = Child(
            "forwarder", "benchmarks.forwarder", ["--port", str(port), "--upstream", inst.address],
            root / "logs" / "forwarder.out",
        )  # fmt: skip
        forwarder.start(lambda: grpc_milvus_healthy(f"{LOCALHOST}:{port}", 1.0, token=inst.token))
        print(
            f"  cluster up in {time.perf_counter() - t0:.0f}s: router {cluster.router_uri}, direct {inst.uri}, forwarder :{port}"
        )
        router_token = {"token": ROUTER_ROOT_TOKEN} if args.router_auth else {}
        clients = {
            "direct": MilvusClient(uri=inst.uri, token=inst.token),  # the instances run with authorization on
            "forwarder": MilvusClient(uri=f"http://{LOCALHOST}:{port}", token=inst.token),
            "router": MilvusClient(uri=cluster.router_uri, **router_token),
        }
        t0 = time.perf_counter()
        result["load"] = load_data(clients, cfg, preset, data)
        print(f"  data loaded and indexed in {time.perf_counter() - t0:.0f}s")
        if cfg.readonly:
            t0 = time.perf_counter()
            cluster.add_readonly(cfg.readonly)
            started = time.perf_counter() - t0
            t0 = time.perf_counter()
            wait_replicas_ready(cluster, SEARCH_COLLECTION, cfg.readonly * cfg.shards)
            result["replica_fill_seconds"] = time.perf_counter() - t0
            wait_replicas_ready(cluster, FLAT_COLLECTION, cfg.readonly * cfg.shards)
            print(
                f"  {cfg.readonly} read-only instance(s) started in {started:.0f}s; their replicas of {SEARCH_COLLECTION} "
                f"({preset.rows} rows) found, filled, indexed, loaded and caught up in {result['replica_fill_seconds']:.1f}s"
            )
        result["recall"] = check_recall(clients, preset, data)
        print("  recall@10: " + ", ".join(f"{k} {v:.4f}" for k, v in result["recall"].items()))
        direct_cursor = WriteCursor()  # direct and forwarder write to the same physical collection
        arms = [
            Arm("direct", clients["direct"], direct_cursor),
            Arm("forwarder", clients["forwarder"], direct_cursor),
            Arm("router", clients["router"], WriteCursor()),
        ]
        # The same router code with WRITE_ACK=applied, beside the default (logged): write metrics only.
        applied = cluster.start_extra_router(overrides={"WRITE_ACK": "applied"})
        clients["router_applied"] = MilvusClient(uri=f"http://{applied.address}", **router_token)
        applied_arm = Arm("router_applied", clients["router_applied"], arms[2].cursor)
        router_pid = cluster.service_pid("router")
        pids = {
            "router": router_pid,
            "forwarder": forwarder.pid,
            "milvus": inst.pid,
            "meta": cluster.service_pid("meta"),
            # Every other instance too: a search the router sends to instance 1 costs CPU there, and
            # each instance's own background work is paid by every arm alike (issue 18's tenants bound).
            **{f"milvus{i}": other.pid for i, other in enumerate(cluster.instances[1:], start=1)},
        }
        result["pids"] = pids
        result["router_rss_mb_start"] = rss_bytes(router_pid) / 2**20 if router_pid else 0.0
        metrics: dict[str, Any] = {}
        for name, kind, unit, conc in measured_metrics(cfg):
            run_block, warmup = block_runner(name, kind, conc, ops, preset)
            measured = arms + [applied_arm] if kind == "write" else arms
            metrics[name] = alternate(measured, preset.rounds, run_block, warmup, pids)
            metrics[name]["kind"] = kind
            metrics[name]["unit"] = unit
            r = ratios(metrics[name], kind)
            print(f"  {name:13s} router/direct {r['ratio']:.3f}  overhead vs forwarder {r['overhead_ratio']}")
        result["metrics"] = metrics
        result["router_rss_mb_end"] = rss_bytes(router_pid) / 2**20 if router_pid else 0.0
        if args.soak_minutes > 0 and router_pid and cfg.name == args.soak_config:
            result["soak"] = soak(arms[2], ops, router_pid, args.soak_minutes)
        targets = evaluate_targets(cfg.name, result)
        result["targets"] = targets
        want_profile = args.profile == "always" or (args.profile == "auto" and any(t["met"] is False for t in targets))
        if want_profile and router_pid:
            result["profiles"] = profile_router(arms[2], ops, preset, router_pid, cfg.name, stamp, targets, args)
        ok = True
    finally:
        for client in clients.values():
            try:
                client.close()
            except Exception:
                pass
        if forwarder is not None:
            forwarder.stop()
        cluster.stop()
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif not ok:
            print(f"  kept {root} (logs of every service under logs/ and instances/)", file=sys.stderr)
    return result


def profile_router(
    arm: Arm, ops: Operations, preset: Preset, pid: int, cfg: str, stamp: str, targets: list[dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    """py-spy the router under the workloads whose targets were missed (all of them with --profile always)."""
    missed = " ".join(t["name"] for t in targets if t["met"] is False)
    out: dict[str, Any] = {}
    seconds = max(6.0, preset.read_seconds * 2)
    jobs: list[tuple[str, Callable[[], Any]]] = []
    if args.profile == "always" or "search" in missed:
        jobs.append(("search_c8", lambda: throughput_block(arm, ops.search(1), seconds, 8)))
    if args.profile == "always" or "insert" in missed:
        batches = max(1, int(seconds / 0.05))
        jobs.append(("insert", lambda: _timed(seconds, lambda i: ops.insert_rows(arm, 50_000 + i)(), batches)))
    for name, workload in jobs:
        path = RESULTS_DIR / f"{stamp}-{cfg}-router-{name}.txt"
        print(f"  py-spy: router during {name} -> {path.name}")
        recorded = profile.record(pid, seconds, path, workload)
        if recorded:
            folded = profile.fold(recorded)
            out[name] = {k: folded[k] for k in ("samples", "top_self", "top_inclusive")}
    return out


def _timed(seconds: float, call: Callable[[int], Any], limit: int) -> None:
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end and i < limit * 10:
        call(i)
        i += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mishards benchmark: direct vs forwarder vs router.")
    parser.add_argument("--preset", default=os.environ.get("BENCH_PRESET") or "standard", choices=sorted(PRESETS))
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS), help="comma-separated config names")
    parser.add_argument("--force-configs", action="store_true", help="run configs whose feature is not built yet")
    parser.add_argument("--no-milvus", action="store_true", help="skip the Milvus configurations")
    parser.add_argument("--no-scaling", action="store_true", help="skip the synthetic-backend scaling run")
    parser.add_argument(
        "--soak-minutes", type=float, default=float(os.environ.get("BENCH_SOAK_MINUTES") or 0),
        help="minutes of mixed load on the router measuring its RSS (default 0: off; the target asks for 10)",
    )  # fmt: skip
    parser.add_argument("--soak-config", default="2shards", help="configuration the soak runs on")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="py-spy the router: when a target is missed (auto), always, or never")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the clusters' folders (logs) after the run")
    parser.add_argument(
        "--router-auth", action="store_true",
        help="run the routers with AUTHORIZATION_ENABLED=true (clients pass root's token); default off",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/<stamp>.json)")
    args = parser.parse_args(argv)

    # SIGTERM ends the run like Ctrl-C: the finally blocks stop every process by PID.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    preset = PRESETS[args.preset]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out_path = args.out or RESULTS_DIR / f"{stamp}.json"
    wanted = [c for c in args.configs.split(",") if c]
    unknown = set(wanted) - {c.name for c in CONFIGS}
    if unknown:
        parser.error(f"unknown config(s) {', '.join(sorted(unknown))}; known: {', '.join(c.name for c in CONFIGS)}")
    report: dict[str, Any] = {
        "meta": {
            **git_state(),
            "preset": preset.__dict__,
            "timestamp": stamp,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "argv": sys.argv[1:],
            "router_auth": args.router_auth,
        },
        "configs": {},
    }
    print(f"Mishards benchmark, preset {preset.name}: {preset.rows} x {preset.dim} vectors, "
          f"{preset.rounds} rounds of direct / forwarder / router, commit {report['meta']['commit']}"
          + (" (uncommitted changes in services/ or libs/)" if report["meta"]["dirty_paths"] else ""))  # fmt: skip
    try:
        if not args.no_milvus:
            data = vectors(preset, preset.rows, 0)
            for cfg in CONFIGS:
                if cfg.name not in wanted:
                    continue
                reason = cfg.skip_reason(args.force_configs)
                if reason:
                    print(f"\n=== {cfg.name}: {cfg.description}\n  {reason}")
                    report["configs"][cfg.name] = {"config": cfg.__dict__, "skipped": reason}
                    continue
                try:
                    ops = Operations(preset, cfg.tenants)
                    report["configs"][cfg.name] = run_config(cfg, preset, ops, data, args, stamp)
                except Exception as exc:  # one configuration failing must not lose the others
                    print(f"  FAILED: {exc!r} (cluster folder and logs kept, see above)", file=sys.stderr)
                    report["configs"][cfg.name] = {"config": cfg.__dict__, "error": repr(exc)}
        report["cross_targets"] = evaluate_cross_targets(report)
        if not args.no_scaling:
            report["scaling"] = run_scaling(preset, RESULTS_DIR, stamp, profile_at_max=args.profile != "never")
            report["scaling_targets"] = evaluate_targets("scaling", report)
    except KeyboardInterrupt:
        print("\ninterrupted: every process started was stopped; partial results follow", file=sys.stderr)
        report["interrupted"] = True
    finally:
        out_path.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    for name, res in report["configs"].items():
        if "metrics" in res:
            print_config_table(name, res)
    if report.get("scaling"):
        print_scaling_table(report["scaling"])
    print_targets(report)
    print(f"\nJSON: {out_path}")
    return 130 if report.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
