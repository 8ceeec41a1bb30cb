"""Cluster configurations the benchmark measures. Add one line to measure another topology.

A configuration that needs a feature not built yet names it in ``requires``; it is
skipped with that message until the feature is listed in ``BUILT_FEATURES``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Features the harness may rely on.
BUILT_FEATURES: frozenset[str] = frozenset({"read-replicas"})


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    writable: int
    readonly: int
    shards: int
    description: str
    requires: str | None = None
    tenants: int = 0  # >0: the collections get a varchar partition key and every search filters one tenant
    metrics: tuple[str, ...] | None = None  # the measured metrics (None: all of benchmarks.run.METRICS)

    def skip_reason(self, force: bool = False) -> str | None:
        if self.requires and self.requires not in BUILT_FEATURES and not force:
            return (
                f"skipped: needs {self.requires!r}, not built yet "
                f"(add it to benchmarks.configs.BUILT_FEATURES, or pass --force-configs)"
            )
        return None


# The reads a multi-tenant application issues; writes are measured by the other configurations.
TENANT_METRICS: tuple[str, ...] = ("search_c1", "search_c8", "search_c32", "search_nq100")

CONFIGS: tuple[ClusterConfig, ...] = (
    ClusterConfig("1shard", 1, 0, 1, "1 shard on 1 writable instance: the router's pure cost"),
    ClusterConfig("2shards", 2, 0, 2, "2 shards on 2 writable instances"),
    ClusterConfig("1wo+1ro", 1, 1, 1, "1 writable + 1 read-only instance (a replica serves reads)", "read-replicas"),
    ClusterConfig("1wo+2ro", 1, 2, 1, "1 writable + 2 read-only instances (replicas serve reads)", "read-replicas"),
    ClusterConfig(
        "tenants",
        2,
        0,
        2,
        "2 shards on 2 writable instances, varchar partition key, 16 tenants; every search filters one tenant",
        tenants=16,
        metrics=TENANT_METRICS,
    ),
    ClusterConfig(
        "tenants-1i",
        1,
        0,
        2,
        "tenants with both shards on 1 writable instance: what the second Milvus instance costs",
        tenants=16,
        metrics=TENANT_METRICS,
    ),
)
