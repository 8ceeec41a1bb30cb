"""The router's read-only topology page: instances, collections, shards, copies, recent errors.

Served on the metrics port (`/` the page, `/topology.json` its data). The page is one
static HTML document whose script fetches the JSON every few seconds and redraws; no
framework, no external assets. Data comes from what the router already holds (the
membership watch and the catalog cache), plus copy states from meta when meta offers
them (`ListCopies`), plus a ring buffer of the errors the router answered.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from mishards.common import metrics
from mishards.common.membership import MembershipWatcher
from mishards.common.metrics import Response
from mishards.router.catalog import CatalogCache
from mishards.router.meta_client import MetaClient
from mishards.v1 import discovery_pb2, meta_pb2

log = logging.getLogger(__name__)

ROLE_NAMES = {discovery_pb2.WRITABLE: "writable", discovery_pb2.READONLY: "readonly"}
HEALTH_NAMES = {discovery_pb2.HEALTHY: "healthy", discovery_pb2.DOWN: "down"}


@dataclass
class ErrorEvent:
    time: float
    method: str
    code: str
    message: str


class RecentErrors:
    """The last `size` errors the router answered (a ring buffer; the oldest falls out)."""

    def __init__(self, size: int = 50) -> None:
        self._events: collections.deque[ErrorEvent] = collections.deque(maxlen=size)

    def record(self, method: str, code: str, message: str) -> None:
        self._events.append(ErrorEvent(time.time(), method, code, message[:500]))

    def newest_first(self) -> list[ErrorEvent]:
        return list(reversed(self._events))


@dataclass
class CopyInfo:
    instance: str
    address: str
    role: str  # "primary" or "replica"
    state: str  # "ready", "catching_up", "failed", ...
    lag: int  # mutation-log entries not yet applied


# (collection id, shard index, instance identity) -> (state, lag)
CopyStates = dict[tuple[int, int, str], tuple[str, int]]
CopyStateSource = Callable[[], Awaitable[CopyStates]]


def meta_copy_states(meta: MetaClient, timeout: float = 2.0) -> CopyStateSource:
    """Copy states from meta's `ListCopies` when meta has it; empty (primaries ready) otherwise."""

    async def fetch() -> CopyStates:
        try:
            answer = await meta.copy_states(timeout)
        except Exception as exc:  # an old meta, or meta down: the page still shows the catalog
            log.debug("ListCopies failed: %s", exc)
            return {}
        return {
            (c.collection_id, c.shard, c.instance): (
                "stuck" if c.stuck else (c.state or "ready"),
                max(0, c.last_seq - c.applied_seq),
            )
            for c in answer.copies
        }

    return fetch


async def _no_states() -> CopyStates:
    return {}


def copies_of(
    collection_id: int, shard: meta_pb2.ShardPlacement, addresses: dict[str, str], states: CopyStates
) -> list[CopyInfo]:
    """Every copy of a shard: the primary, then its replicas, with state and lag.

    Without a state from meta a primary is "ready" and a replica "placed" (the replication
    issue fills states and lags in through `ListCopies`).
    """
    out = []
    for role, identity in [("primary", shard.primary)] + [("replica", r) for r in shard.replicas]:
        state, lag = states.get((collection_id, shard.index, identity), ("ready" if role == "primary" else "placed", 0))
        out.append(CopyInfo(identity, addresses.get(identity, ""), role, state, lag))
    return out


class TopologyPage:
    """Builds the page's data and serves `/` and `/topology.json`; feeds the copy metrics too."""

    def __init__(
        self,
        membership: MembershipWatcher,
        catalog: CatalogCache,
        errors: RecentErrors,
        copy_states: CopyStateSource | None = None,
    ) -> None:
        self.membership = membership
        self.catalog = catalog
        self.errors = errors
        self.copy_states = copy_states or _no_states
        self._copy_states_seen: set[str] = set()

    async def snapshot(self) -> dict[str, Any]:
        """The cluster as the router sees it, as plain JSON data."""
        states = await self.copy_states()
        instances = [
            {
                "identity": i.identity,
                "address": i.address,
                "role": ROLE_NAMES.get(i.role, "unknown"),
                "health": HEALTH_NAMES.get(i.health, "unknown"),
                "reason": i.reason,
            }
            for i in self.membership.membership.instances
        ]
        addresses = {i.identity: i.address for i in self.membership.membership.instances}
        collections_out = []
        by_state: collections.Counter[str] = collections.Counter()
        for db in self.catalog.databases:
            for view in self.catalog.collections(db):
                shards = []
                for shard in view.shards:
                    copies = copies_of(view.id, shard, addresses, states)
                    by_state.update(c.state for c in copies)
                    shards.append(
                        {
                            "index": shard.index,
                            "physical_name": shard.physical_name,
                            "copies": [asdict(c) for c in copies],
                        }
                    )
                collections_out.append(
                    {
                        "db": view.db_name or db,
                        "name": view.name,
                        "id": view.id,
                        "shards_num": view.shards_num,
                        "aliases": sorted(view.message.aliases),
                        "shards": shards,
                    }
                )
        self._set_copy_gauges(by_state)
        return {
            "generated_at": time.time(),
            "membership_version": self.membership.membership.version,
            "discovery_ok": self.membership.membership.backend_ok,
            "catalog_version": self.catalog.version,
            "instances": instances,
            "collections": collections_out,
            "copies_by_state": dict(by_state),
            "errors": [asdict(e) for e in self.errors.newest_first()],
        }

    def _set_copy_gauges(self, by_state: collections.Counter[str]) -> None:
        # A state no copy is in any more drops to 0 (clear() would leave its old value in a worker's metrics file).
        for state in self._copy_states_seen - by_state.keys():
            metrics.COPIES.labels(state).set(0)
        for state, count in by_state.items():
            metrics.COPIES.labels(state).set(count)
        self._copy_states_seen |= by_state.keys()

    async def page(self) -> Response:
        return Response(200, "text/html; charset=utf-8", PAGE.encode())

    async def data(self) -> Response:
        return Response(200, "application/json", json.dumps(await self.snapshot()).encode())

    async def refresh_metrics(self) -> Response:
        """`/metrics`, with the copy gauges recomputed first."""
        await self.snapshot()
        return Response(200, metrics.CONTENT_TYPE, metrics.exposition())

    def routes(self) -> dict[str, Callable[[], Awaitable[Response]]]:
        return {
            "/": self.page,
            "/topology": self.page,
            "/topology.json": self.data,
            "/metrics": self.refresh_metrics,
        }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Mishards topology</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
 h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em}
 .meta{color:#666;font-size:.9em}
 .cards{display:flex;flex-wrap:wrap;gap:.6em}
 .card{background:#fff;border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:.5em .8em;min-width:14em}
 .card.healthy{border-left-color:#2e7d32} .card.down{border-left-color:#c62828} .card.unknown{border-left-color:#f9a825}
 .role{font-size:.8em;text-transform:uppercase;letter-spacing:.05em;color:#555}
 table{border-collapse:collapse;background:#fff;margin-bottom:1em}
 th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
 th{background:#f0f0f0}
 .copy{display:inline-block;margin:.1em .3em .1em 0;padding:.1em .5em;border-radius:3px;background:#e8f5e9}
 .copy.replica{background:#e3f2fd} .copy.failed,.copy.down{background:#ffebee} .copy.catching_up,.copy.placed{background:#fff8e1}
 .err td{font-family:ui-monospace,monospace;font-size:.85em}
 .empty{color:#888;font-style:italic}
</style></head>
<body>
<h1>Mishards topology</h1>
<div class="meta" id="meta">loading&hellip;</div>
<h2>Instances</h2><div class="cards" id="instances"></div>
<h2>Collections</h2><div id="collections"></div>
<h2>Recent errors</h2><div id="errors"></div>
<script>
"use strict";
const REFRESH_MS = 3000;
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function render(t) {
  const when = new Date(t.generated_at * 1000).toLocaleTimeString();
  document.getElementById("meta").textContent =
    `updated ${when} · membership v${t.membership_version}${t.discovery_ok ? "" : " (discovery back end unreachable)"}` +
    ` · catalog v${t.catalog_version} · refreshes every ${REFRESH_MS / 1000}s`;
  const inst = document.getElementById("instances");
  inst.replaceChildren(...(t.instances.length ? t.instances.map(i =>
    el("div", {class: `card instance ${i.health}`, "data-identity": i.identity},
      el("div", {class: "role"}, i.role), el("strong", {}, i.identity),
      el("div", {}, i.address), el("div", {}, i.health + (i.reason ? ": " + i.reason : ""))))
    : [el("span", {class: "empty"}, "no instances")]));
  const cols = document.getElementById("collections");
  if (!t.collections.length) { cols.replaceChildren(el("span", {class: "empty"}, "no collections")); }
  else {
    const table = el("table", {id: "shards"},
      el("tr", {}, el("th", {}, "collection"), el("th", {}, "shard"), el("th", {}, "physical"), el("th", {}, "copies (instance · role · state · lag)")));
    for (const c of t.collections) {
      c.shards.forEach((s, n) => {
        const row = el("tr", {class: "shard", "data-collection": c.name, "data-shard": s.index});
        if (n === 0) row.append(el("td", {rowspan: c.shards.length},
          el("strong", {}, c.name), el("div", {class: "meta"}, `${c.db} · id ${c.id} · ${c.shards_num} shards` +
          (c.aliases.length ? ` · aliases ${c.aliases.join(", ")}` : ""))));
        row.append(el("td", {}, s.index), el("td", {}, s.physical_name),
          el("td", {}, ...s.copies.map(p => el("span", {class: `copy ${p.role} ${p.state}`},
            `${p.instance} · ${p.role} · ${p.state}` + (p.lag ? ` · lag ${p.lag}` : "")))));
        table.append(row);
      });
    }
    cols.replaceChildren(table);
  }
  const errs = document.getElementById("errors");
  errs.replaceChildren(t.errors.length ? el("table", {},
      el("tr", {}, el("th", {}, "time"), el("th", {}, "method"), el("th", {}, "code"), el("th", {}, "message")),
      ...t.errors.map(e => el("tr", {class: "err"}, el("td", {}, new Date(e.time * 1000).toLocaleTimeString()),
        el("td", {}, e.method), el("td", {}, e.code), el("td", {}, e.message))))
    : el("span", {class: "empty"}, "none"));
}
async function refresh() {
  try {
    const r = await fetch("topology.json", {cache: "no-store"});
    render(await r.json());
  } catch (e) {
    document.getElementById("meta").textContent = "router unreachable: " + e;
  }
  setTimeout(refresh, REFRESH_MS);
}
refresh();
</script>
</body></html>
"""
