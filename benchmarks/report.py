"""Ratios, targets of issue #10, and the printed tables."""

from __future__ import annotations

from typing import Any

ARMS = ("direct", "forwarder", "router")


def _value(arm: dict[str, Any], kind: str) -> float:
    return float(arm["p50_ms"] if kind in ("latency", "session") else arm["rate_median"])


def ratios(metric: dict[str, Any], kind: str) -> dict[str, Any]:
    """router/direct, and (router − direct)/(forwarder − direct) on the cost of one operation.

    Cost is the median latency for latency metrics and 1/throughput otherwise, so the
    second ratio reads the same everywhere: router overhead in units of the forwarding
    hop's overhead. None when the hop cost nothing measurable (the ratio means nothing).
    """
    d, f, r = (_value(metric[a], kind) for a in ARMS)
    if kind in ("latency", "session"):
        cd, cf, cr = d, f, r
    else:
        cd, cf, cr = (1.0 / x if x else float("inf") for x in (d, f, r))
    overhead = (cr - cd) / (cf - cd) if cf - cd > 1e-3 * cd else None
    out = {"ratio": r / d if d else None, "overhead_ratio": round(overhead, 3) if overhead is not None else None}
    if "router_applied" in metric:  # writes: the router again, acknowledging once the primaries applied
        applied = _value(metric["router_applied"], kind)
        out["applied_ratio"] = applied / d if d else None
    return out


def hop_ratio(metric: dict[str, Any], kind: str) -> float | None:
    """forwarder/direct: what a bare forwarding hop costs on this metric (latency or throughput)."""
    d, f = _value(metric["direct"], kind), _value(metric["forwarder"], kind)
    return f / d if d else None


def router_hop_ratio(metric: dict[str, Any], kind: str) -> float | None:
    """router/forwarder: the router against a bare forwarding hop to the same Milvus."""
    f, r = _value(metric["forwarder"], kind), _value(metric["router"], kind)
    return r / f if f else None


def _target(name: str, value: float | None, op: str, bound: float, note: str = "") -> dict[str, Any]:
    met = None if value is None else (value <= bound if op == "<=" else value >= bound)
    return {"name": name, "value": value, "op": op, "bound": bound, "met": met, "note": note}


def evaluate_targets(scope: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if scope == "scaling":
        rows = data.get("scaling") or []
        for a, b in zip(rows, rows[1:]):
            ca, cb = a["router_cpu_ms_per_search_c1"], b["router_cpu_ms_per_search_c1"]
            grow = b["shards"] / a["shards"]
            out.append(
                _target(
                    f"router CPU/search {a['shards']}->{b['shards']} shards grows <= linearly (x{grow:g}, 10% noise allowance)",
                    cb / ca if ca else None,
                    "<=",
                    round(grow * 1.1, 3),
                )  # fmt: skip
            )
        if rows:
            top = rows[-1]
            share = top.get("pyspy_merge_share", top["merge_share_of_router_cpu"])
            how = "py-spy samples" if "pyspy_merge_share" in top else "in-process merge time / router CPU"
            out.append(_target(f"merge share of router time at {top['shards']} shards", share, "<=", 0.10, how))
        return out
    m = data.get("metrics", {})
    r = {name: ratios(v, v["kind"]) for name, v in m.items()}
    if scope == "1shard":
        out.append(_target("1 shard: search p50 router/direct", r["search_c1"]["ratio"], "<=", 1.40))
        out.append(
            _target("1 shard: search p50 overhead / forwarder overhead", r["search_c1"]["overhead_ratio"], "<=", 1.5)
        )
        out.append(_target("1 shard: search throughput c8 router/direct", r["search_c8"]["ratio"], ">=", 0.80))
        out.append(_target("1 shard: search throughput c32 router/direct", r["search_c32"]["ratio"], ">=", 0.80))
        out.append(
            _target(
                "1 shard: search p50 router/forwarder (hop)", router_hop_ratio(m["search_c1"], "latency"), "<=", 1.05
            )
        )
        out.append(
            _target(
                "1 shard: search throughput c8 router/forwarder (hop)",
                router_hop_ratio(m["search_c8"], "throughput"),
                ">=",
                0.95,
            )
        )
        out.append(
            _target(
                "1 shard: insert rows/s router/direct, 1 writer (WRITE_ACK=logged)", r["insert"]["ratio"], ">=", 0.90
            )
        )
    elif scope == "2shards":
        out.append(_target("2 shards: search throughput c8 router/direct", r["search_c8"]["ratio"], ">=", 0.80))
        out.append(_report("2 shards unfiltered: search p50 router/direct", r["search_c1"]["ratio"]))
        out.append(
            _target(
                "2 shards: insert rows/s router/direct, 1 writer (WRITE_ACK=logged)", r["insert"]["ratio"], ">=", 0.90
            )
        )
        out.append(
            _target(
                "2 shards: insert rows/s router/direct, 4 writers (WRITE_ACK=logged)",
                r["insert_w4"]["ratio"],
                ">=",
                0.85,
            )
        )
    rec = data.get("recall")
    if rec:
        out.append(_target(f"{scope}: FLAT recall@10 via router", rec["flat_router"], ">=", 1.0))
        out.append(
            _target(f"{scope}: HNSW recall@10 router - direct", rec["hnsw_router"] - rec["hnsw_direct"], ">=", -0.02)
        )
    soak = data.get("soak")
    if soak:
        out.append(
            _target(f"{scope}: router RSS end/start over {soak['minutes']:g} min", soak["rss_mb_end"] / soak["rss_mb_start"], "<=", 1.10, "flat = within 10%")
        )  # fmt: skip
    return out


def _report(name: str, value: float | None) -> dict[str, Any]:
    """A figure the issue asks to report, without a bound."""
    return {"name": name, "value": value, "op": "", "bound": None, "met": None, "note": "reported, no target"}


def evaluate_cross_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets that compare configurations of one run: ``tenants`` against the 1-shard hop.

    A tenant-filtered search on a partition-key collection touches one shard, so the router
    should cost what a bare hop costs on one shard: tenants router/direct throughput at
    least 0.95x the 1-shard forwarder/direct ratio, and p50 router/direct at most 1.05x it.
    """
    configs = report.get("configs", {})
    one, ten = configs.get("1shard", {}).get("metrics"), configs.get("tenants", {}).get("metrics")
    if not one or not ten:
        return []
    out: list[dict[str, Any]] = []
    for metric, kind, label in (("search_c8", "throughput", "throughput c8"), ("search_c1", "latency", "p50")):
        hop = hop_ratio(one[metric], kind)
        value = ratios(ten[metric], kind)["ratio"]
        if hop is None:
            continue
        factor, op = (0.95, ">=") if kind == "throughput" else (1.05, "<=")
        out.append(
            _target(
                f"tenants: search {label} router/direct vs {factor}x the 1-shard forwarder/direct ({hop:.3f})",
                value,
                op,
                round(factor * hop, 3),
                f"tenants' own forwarder/direct: {_fmt(hop_ratio(ten[metric], kind), 3)}",
            )
        )
    return out


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def print_config_table(name: str, res: dict[str, Any]) -> None:
    cfg = res["config"]
    print(f"\n## {name}: {cfg['description']}")
    head = (
        f"{'metric':14s} {'unit':12s} {'direct':>10s} {'forwarder':>10s} {'router':>10s} {'r/d':>6s} "
        f"{'(r-d)/(f-d)':>11s} {'applied/d':>9s}"
    )
    print(head)
    print("-" * len(head))
    for metric, m in res["metrics"].items():
        kind = m["kind"]
        r = ratios(m, kind)
        if kind in ("latency", "session"):
            rows = [("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")]
        else:
            rows = [(f"{m['unit']}/s", "rate_median")]
        for i, (unit, key) in enumerate(rows):
            vals = [m[a][key] for a in ARMS]
            extra = (
                f"{_fmt(r['ratio'], 3):>6s} {_fmt(r['overhead_ratio'], 2):>11s} {_fmt(r.get('applied_ratio'), 3):>9s}"
                if i == 0
                else ""
            )
            print(
                f"{metric if i == 0 else '':14s} {unit:12s} " + " ".join(f"{_fmt(v):>10s}" for v in vals) + " " + extra
            )
    for metric in ("search_c1", "search_c8"):
        m = res["metrics"][metric]
        rc = m["router"]["cpu_ms_per_unit"].get("router")
        fc = m["forwarder"]["cpu_ms_per_unit"].get("forwarder")
        if rc is not None:
            print(f"router CPU s per 1000 searches ({metric}): {rc:.2f}   (forwarder: {_fmt(fc)})")
    m = res["metrics"].get("search_c8")
    if m:
        print("CPU ms per search at c8, by process, during each arm's blocks:")
        for arm in ARMS:
            per = m[arm]["cpu_ms_per_unit"]
            total = sum(per.values())
            print(f"  {arm:10s} " + "  ".join(f"{p} {v:.3f}" for p, v in sorted(per.items())) + f"  = {total:.3f}")
    rec = res.get("recall", {})
    if rec:
        print("recall@10: " + ", ".join(f"{k} {v:.4f}" for k, v in rec.items()))
    if res.get("soak"):
        s = res["soak"]
        print(f"router RSS over {s['minutes']:g} min soak: {s['rss_mb_start']:.1f} MB -> {s['rss_mb_end']:.1f} MB")
    print(
        f"router RSS: {res.get('router_rss_mb_start', 0):.1f} MB before the measurements, {res.get('router_rss_mb_end', 0):.1f} MB after"
    )
    for wl, prof in (res.get("profiles") or {}).items():
        print(f"py-spy top frames of the router during {wl} ({prof['samples']} samples):")
        for frame, share in prof["top_self"][:8]:
            print(f"  self {100 * share:5.1f}%  {frame}")
        for frame, share in prof["top_inclusive"][:12]:
            print(f"  incl {100 * share:5.1f}%  {frame}")


def print_scaling_table(rows: list[dict[str, Any]]) -> None:
    print("\n## router scaling on synthetic backends (search nq 1, topk 10, fixed backend delay)")
    head = f"{'shards':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU ms/search':>14s} {'c8 /s':>8s} {'CPU ms/search c8':>17s} {'merge µs':>9s} {'merge %':>8s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['shards']:>6d} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['router_cpu_ms_per_search_c1']:>14.2f} "
            f"{r['qps_c8']:>8.0f} {r['router_cpu_ms_per_search_c8']:>17.2f} {r['merge_us_in_process']:>9.0f} "
            f"{100 * r['merge_share_of_router_cpu']:>7.1f}%"
        )
    top = rows[-1]
    if "pyspy_merge_share" in top:
        print(
            f"py-spy at {top['shards']} shards: merge_search_results in {100 * top['pyspy_merge_share']:.1f}% of router samples; top frames:"
        )
        for frame, share in top["pyspy_top_inclusive"][:12]:
            print(f"  incl {100 * share:5.1f}%  {frame}")


def print_targets(report: dict[str, Any]) -> None:
    targets = [t for res in report["configs"].values() for t in res.get("targets", [])]
    targets += report.get("cross_targets", [])
    targets += report.get("scaling_targets", [])
    skipped = [(n, r["skipped"]) for n, r in report["configs"].items() if "skipped" in r]
    if not targets and not skipped:
        return
    print("\n## targets (issue #10)")
    for t in targets:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        print(
            f"  [{mark}] {t['name']}: {_fmt(t['value'], 3)}"
            + (f" (target {t['op']} {t['bound']})" if t["bound"] is not None else "")
            + (f" - {t['note']}" if t["note"] else "")
        )
    for name, why in skipped:
        print(f"  [skip] {name}: {why}")
    if not any("soak" in r for r in report["configs"].values()):
        print("  [n/a ] router RSS flat over a 10-minute mixed run: not run (pass --soak-minutes 10)")
