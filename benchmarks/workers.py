"""`make bench-workers`: search QPS of a router with 1 worker beside one with ROUTER_WORKERS=N, in one run.

    python -m benchmarks.workers [--workers 2] [--threads 32] [--clients 8] [--seconds 8] [--rounds 3]
                                 [--shards 2] [--delay-ms 2]

One cluster (real discovery and meta, synthetic Milvus backends, as the scaling run uses, so that
the router is what is measured) and two routers over it: the cluster's own (ROUTER_WORKERS=1) and
an extra one with ROUTER_WORKERS=N. Blocks of `threads` searching threads alternate between the
two (A, B, A, B, ...). The threads share `clients` pymilvus clients, each its own TCP connection
(a worker gets whole connections from the kernel: one connection would reach one worker only).
Reported per router: median searches/s, CPU ms per search of the router (supervisor and workers
summed), of the client (this process) and of the synthetic backends, how busy the whole machine
was, and the ratio N workers / 1 worker. docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pymilvus import MilvusClient

from benchmarks.measure import closed_loop
from benchmarks.presets import PRESETS
from benchmarks.procstat import CpuMeter, children
from benchmarks.synthetic_cluster import SyntheticCluster
from benchmarks.workload import SEARCH_COLLECTION, create_collection, index_params, search_params, vectors

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# pymilvus shares one handler among clients of one address and token unless dedicated, and gRPC one
# connection among channels of one address unless each has its own subchannel pool.
OWN_CONNECTION: dict[str, Any] = {"dedicated": True, "grpc_options": {"grpc.use_local_subchannel_pool": 1}}


def wait_workers_listening(supervisor: int, workers: int, port: int, timeout: float = 120.0) -> list[int]:
    """Wait until ``workers`` children of ``supervisor`` each hold a listening socket on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listening = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":
                    listening.add(f"socket:[{f[9]}]")
        pids = children(supervisor)
        ready = [p for p in pids if _sockets(p) & listening]
        if len(ready) == workers:
            return pids
        time.sleep(0.5)
    raise RuntimeError(f"the {workers} workers of router {supervisor} did not all listen on port {port}")


def _sockets(pid: int) -> set[str]:
    """What the file descriptors of ``pid`` point to (``socket:[inode]`` for sockets)."""
    targets = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return targets
    for fd in fds:
        try:
            targets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            continue
    return targets


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def search_block(clients: list[MilvusClient], queries: list[list[float]], threads: int, seconds: float) -> float:
    """``threads`` threads searching back to back for ``seconds`` (thread t uses client t mod len); searches/s."""
    params = search_params(PRESETS["small"])

    def search(t: int, i: int) -> int:
        clients[t % len(clients)].search(
            SEARCH_COLLECTION, data=[queries[i % len(queries)]], limit=10, search_params=params
        )
        return 1

    searches, wall = closed_loop(threads, seconds, search)
    return searches / wall


def measure(args: argparse.Namespace) -> dict[str, Any]:
    preset = PRESETS["small"]
    queries = vectors(preset, 1000, 1).tolist()
    with tempfile.TemporaryDirectory(prefix="mishards-bench-workers-") as root:
        cluster = SyntheticCluster(root, args.shards, args.delay_ms)
        cluster.start()
        try:
            extra = cluster.start_extra_router(overrides={"ROUTER_WORKERS": str(args.workers)})
            assert extra.pid is not None
            worker_pids = wait_workers_listening(extra.pid, args.workers, extra.port)
            setup = MilvusClient(uri=cluster.router_uri)
            create_collection(setup, SEARCH_COLLECTION, preset, args.shards)
            setup.create_index(SEARCH_COLLECTION, index_params(preset, "HNSW"))
            setup.load_collection(SEARCH_COLLECTION)
            setup.close()
            single_pid = cluster.service_pid("router")
            arms = {
                "1 worker": (cluster.router_uri, {"router": single_pid}),
                f"{args.workers} workers": (
                    f"http://{extra.address}",
                    {"supervisor": extra.pid, **{f"worker{i}": p for i, p in enumerate(worker_pids)}},
                ),
            }
            clients = {
                name: [MilvusClient(uri=uri, **OWN_CONNECTION) for _ in range(args.clients)]
                for name, (uri, _) in arms.items()
            }
            for name in arms:  # warm-up: every connection made, every worker's catalog loaded
                search_block(clients[name], queries, args.threads, 2.0)
            rates: dict[str, list[float]] = {name: [] for name in arms}
            cpu: dict[str, float] = dict.fromkeys(arms, 0.0)
            others: dict[str, dict[str, float]] = {name: {} for name in arms}
            busy: dict[str, list[float]] = {name: [] for name in arms}
            searches: dict[str, float] = dict.fromkeys(arms, 0.0)
            fleet = cluster.fleet.pid if cluster.fleet else None
            for _ in range(args.rounds):
                for name, (_, pids) in arms.items():
                    meter = CpuMeter(pids)
                    rest = CpuMeter({"client": os.getpid(), "synthetic": fleet})
                    meter.start()
                    rest.start()
                    busy0, total0 = machine_busy()
                    rate = search_block(clients[name], queries, args.threads, args.seconds)
                    busy1, total1 = machine_busy()
                    cpu[name] += sum(meter.stop().values())
                    for proc, used in rest.stop().items():
                        others[name][proc] = others[name].get(proc, 0.0) + used
                    busy[name].append((busy1 - busy0) / max(total1 - total0, 1))
                    rates[name].append(rate)
                    searches[name] += rate * args.seconds
                    print(f"  {name:>10}: {rate:8.0f} searches/s, machine {100 * busy[name][-1]:.0f}% busy", flush=True)
            for pool in clients.values():
                for client in pool:
                    client.close()
        finally:
            cluster.stop()
    out: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count(), "arms": {}}
    for name in arms:
        out["arms"][name] = {
            "qps_median": statistics.median(rates[name]),
            "qps": rates[name],
            "router_cpu_ms_per_search": 1000.0 * cpu[name] / max(searches[name], 1.0),
            "cpu_ms_per_search": {p: 1000.0 * c / max(searches[name], 1.0) for p, c in others[name].items()},
            "machine_busy": statistics.median(busy[name]),
        }
    names = list(arms)
    out["ratio"] = out["arms"][names[1]]["qps_median"] / max(out["arms"][names[0]]["qps_median"], 1e-9)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="ROUTER_WORKERS of the second router")
    parser.add_argument("--threads", type=int, default=32, help="searching threads")
    parser.add_argument("--clients", type=int, default=8, help="pymilvus clients (connections) the threads share")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one block")
    parser.add_argument("--rounds", type=int, default=3, help="blocks per router")
    parser.add_argument("--shards", type=int, default=2, help="synthetic backends (shards of the collection)")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="each synthetic search's delay")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON output (default benchmarks/results/<stamp>-workers.json)"
    )
    args = parser.parse_args(argv)
    result = measure(args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS_DIR / f"{stamp}-workers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n{'router':>10}  {'searches/s':>10}  {'CPU ms/search: router':>21}  {'client':>6}  {'synthetic':>9}  {'machine busy':>12}"
    )
    for name, arm in result["arms"].items():
        other = arm["cpu_ms_per_search"]
        print(
            f"{name:>10}  {arm['qps_median']:>10.0f}  {arm['router_cpu_ms_per_search']:>21.2f}  "
            f"{other.get('client', 0.0):>6.2f}  {other.get('synthetic', 0.0):>9.2f}  {100 * arm['machine_busy']:>11.0f}%"
        )
    print(f"ratio {args.workers} workers / 1 worker: {result['ratio']:.2f}  ({result['cpus']} CPUs; results in {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
