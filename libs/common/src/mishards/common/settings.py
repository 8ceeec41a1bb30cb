"""Typed settings for every Mishards service.

Values come from environment variables (no prefix), a `.env` file in the working
directory and an optional settings file named by `MISHARDS_SETTINGS_FILE`, read
through dynaconf. Nothing is read at import: `load_settings()` is called by `main()`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from dynaconf import Dynaconf  # type: ignore[import-untyped]


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"setting {name}={raw!r} is not a boolean (use true or false)")


def _parse_int(name: str, raw: Any, minimum: int | None, maximum: int | None) -> int:
    if isinstance(raw, bool):
        raise SettingsError(f"setting {name}={raw!r} is not an integer")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(f"setting {name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"setting {name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"setting {name}={value} is above the maximum {maximum}")
    return value


def _parse_float(name: str, raw: Any, minimum: float | None) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SettingsError(f"setting {name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"setting {name}={value} is below the minimum {minimum}")
    return value


def _parse_list(raw: Any) -> list[str]:
    if isinstance(raw, (list, tuple)):
        return [str(x).strip() for x in raw if str(x).strip()]
    return [part.strip() for part in str(raw).split(",") if part.strip()]


def _meta(
    kind: str,
    doc: str,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    return {"kind": kind, "doc": doc, "min": minimum, "max": maximum, "choices": choices}


PORT = (0, 65535)
TLS_FILE_SETTINGS = ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE", "TLS_CA_FILE", "MILVUS_BACKEND_TLS_CA_FILE")


@dataclass(frozen=True)
class Settings:
    """Every setting of every service, with the defaults of the README table."""

    DEBUG: bool = field(
        default=False, metadata=_meta("bool", "debug mode: every service logs at DEBUG, whatever LOG_LEVEL says")
    )
    TIMEZONE: str = field(default="UTC", metadata=_meta("str", "time zone of log timestamps"))
    MAX_RETRY: int = field(
        default=3,
        metadata=_meta(
            "int", "retries of a read on the next ready copy of a shard when a copy does not answer", 0, 100
        ),
    )
    SERVER_PORT: int = field(default=19530, metadata=_meta("int", "router's Milvus-protocol port", *PORT))
    SERVER_HOST: str = field(default="0.0.0.0", metadata=_meta("str", "address the services bind"))
    WOSERVER: list[str] = field(
        default_factory=list, metadata=_meta("list", "writable Milvus instances, comma separated host[:port]")
    )
    SQLALCHEMY_DATABASE_URI: str = field(
        default="sqlite:///mishards-meta.db", metadata=_meta("str", "meta store database URL")
    )
    SQL_ECHO: bool = field(default=False, metadata=_meta("bool", "log every SQL statement"))
    SQLALCHEMY_DATABASE_TEST_URI: str = field(
        default="",
        metadata=_meta(
            "str",
            "MySQL server URL (without database) for the meta store tests; default mysql+pymysql://root:@127.0.0.1:3306",
        ),
    )
    DISCOVERY_PLUGIN_PATH: str = field(default="", metadata=_meta("str", "folder searched for a user discovery class"))
    DISCOVERY_CLASS_NAME: str = field(
        default="static",
        metadata=_meta("str", "discovery back end: static, file, consul, kubernetes, or a user class"),
    )
    DISCOVERY_STATIC_HOSTS: list[str] = field(
        default_factory=list, metadata=_meta("list", "read-only Milvus instances for the static back end")
    )
    DISCOVERY_STATIC_PORT: int = field(default=19530, metadata=_meta("int", "default port of static entries", 1, 65535))
    DISCOVERY_FILE_PATH: str = field(default="", metadata=_meta("str", "YAML instance list for the file back end"))
    DISCOVERY_PROBE_INTERVAL: float = field(
        default=2.0, metadata=_meta("float", "seconds between health probes of each instance", 0.05)
    )
    DISCOVERY_PROBE_TIMEOUT: float = field(
        default=3.0, metadata=_meta("float", "seconds a health probe may take", 0.05)
    )
    DISCOVERY_HEALTHY_AFTER: int = field(
        default=2,
        metadata=_meta(
            "int", "consecutive good health probes before an instance is announced healthy (a loss is at once)", 1, 100
        ),
    )
    DISCOVERY_KUBERNETES_NAMESPACE: str = field(
        default="",
        metadata=_meta(
            "str", "namespace of the Milvus pods (kubernetes back end); empty: the service account's or kubeconfig's"
        ),
    )
    DISCOVERY_KUBERNETES_IN_CLUSTER: bool = field(
        default=False,
        metadata=_meta("bool", "use the in-cluster service account instead of a kubeconfig (kubernetes back end)"),
    )
    DISCOVERY_KUBERNETES_POLL_INTERVAL: int = field(
        default=5,
        metadata=_meta("int", "seconds between full re-lists of pods; changes in between come from a watch", 1),
    )
    DISCOVERY_KUBERNETES_POD_PATT: str = field(
        default="",
        metadata=_meta("str", "regular expression searched in Milvus pod names; empty: every pod"),
    )
    DISCOVERY_KUBERNETES_LABEL_SELECTOR: str = field(
        default="", metadata=_meta("str", "label selector of Milvus pods (kubernetes back end)")
    )
    DISCOVERY_CONSUL_HOST: str = field(
        default="127.0.0.1", metadata=_meta("str", "Consul agent host (consul back end)")
    )
    DISCOVERY_CONSUL_PORT: int = field(default=8500, metadata=_meta("int", "Consul agent HTTP port", 1, 65535))
    DISCOVERY_CONSUL_TOKEN: str = field(default="", metadata=_meta("str", "Consul ACL token; empty: none"))
    DISCOVERY_CONSUL_DATACENTER: str = field(
        default="", metadata=_meta("str", "Consul datacenter; empty: the agent's own")
    )
    DISCOVERY_CONSUL_WO_SERVICE: str = field(
        default="milvus-wo", metadata=_meta("str", "Consul service name of the writable Milvus instances")
    )
    DISCOVERY_CONSUL_RO_SERVICE: str = field(
        default="milvus-ro",
        metadata=_meta("str", "Consul service name of the read-only Milvus instances; empty: none"),
    )
    DISCOVERY_CONSUL_TAG: str = field(
        default="", metadata=_meta("str", "only Consul service instances carrying this tag; empty: all")
    )
    TRACER_PLUGIN_PATH: str = field(
        default="",
        metadata=_meta("str", "folder searched for a user tracer class (TRACER_CLASS_NAME names it)"),
    )
    TRACER_CLASS_NAME: str = field(
        default="",
        metadata=_meta("str", "tracer: empty disables tracing, Jaeger exports OTLP"),
    )
    TRACING_SERVICE_NAME: str = field(default="mishards", metadata=_meta("str", "service name of traces"))
    TRACING_SAMPLER_TYPE: str = field(
        default="const",
        metadata=_meta(
            "str",
            "sampler, as Jaeger defines them: const (PARAM 1 samples all, 0 none), probabilistic (PARAM = ratio), ratelimiting (PARAM = traces per second)",
            choices=("const", "probabilistic", "ratelimiting"),
        ),
    )
    TRACING_SAMPLER_PARAM: float = field(
        default=1.0, metadata=_meta("float", "sampler parameter (see TRACING_SAMPLER_TYPE)", 0)
    )
    TRACING_LOG_PAYLOAD: bool = field(
        default=False,
        metadata=_meta("bool", "attach request summaries to spans (collection, nq, topk, row counts; never vectors)"),
    )
    TRACING_EXPORTER_ENDPOINT: str = field(
        default="http://127.0.0.1:4317",
        metadata=_meta("str", "OTLP/gRPC endpoint of the trace collector (Jaeger accepts OTLP)"),
    )
    LOG_LEVEL: str = field(
        default="INFO", metadata=_meta("str", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    )
    LOG_PATH: str = field(default="/tmp/mishards", metadata=_meta("str", "folder of log files"))
    LOG_NAME: str = field(
        default="logfile", metadata=_meta("str", "log file name prefix (the service name is appended)")
    )
    LOG_FORMAT: str = field(
        default="text",
        metadata=_meta("str", "log line format: text, or json (one JSON object per line)", choices=("text", "json")),
    )
    LOG_MAX_BYTES: int = field(
        default=50 << 20, metadata=_meta("int", "size at which a log file is rotated (bytes)", 1024)
    )
    LOG_BACKUP_COUNT: int = field(default=5, metadata=_meta("int", "rotated log files kept", 0, 1000))
    ROUTER_PLUGIN_PATH: str = field(
        default="",
        metadata=_meta("str", "folder searched for a user read-routing class (docs/replication.md)"),
    )
    ROUTER_CLASS_NAME: str = field(
        default="ConsistentHashRouter",
        metadata=_meta("str", "read-routing strategy: which ready copy of a shard serves a read (docs/replication.md)"),
    )
    META_SERVER_PORT: int = field(default=19541, metadata=_meta("int", "meta's gRPC port", *PORT))
    META_ADDRESS: str = field(default="127.0.0.1:19541", metadata=_meta("str", "where the other services reach meta"))
    DISCOVERY_SERVER_PORT: int = field(default=19542, metadata=_meta("int", "discovery's gRPC port", *PORT))
    DISCOVERY_ADDRESS: str = field(
        default="127.0.0.1:19542", metadata=_meta("str", "where the other services reach discovery")
    )
    METRICS_PORT: int = field(
        default=0,
        metadata=_meta(
            "int",
            "HTTP port of /metrics (and the router's topology page); 0 means the service's default (router 9191, meta 9192, discovery 9193)",
            *PORT,
        ),
    )
    METRICS_HOST: str = field(
        default="127.0.0.1",
        metadata=_meta(
            "str",
            "address /metrics and the router's topology page listen on; loopback by default (the page lists "
            "backends, collections and recent errors), 0.0.0.0 in the chart so that Prometheus can scrape",
        ),
    )
    MISHARDS_INTERNAL_TOKEN: str = field(
        default="",
        metadata=_meta(
            "str",
            "secret shared by router, meta, discovery and the CLI; meta and discovery refuse calls without it "
            "(UNAUTHENTICATED); empty: no check (mishards up and the chart always set one)",
        ),
    )
    TLS_CERT_FILE: str = field(
        default="",
        metadata=_meta(
            "str", "PEM certificate (chain) every service serves TLS with; with TLS_KEY_FILE turns TLS on for all hops"
        ),
    )
    TLS_KEY_FILE: str = field(default="", metadata=_meta("str", "PEM private key of TLS_CERT_FILE"))
    TLS_CLIENT_CA_FILE: str = field(
        default="",
        metadata=_meta(
            "str",
            "PEM CA bundle of client certificates: set, every service requires one (mutual TLS) and internal "
            "clients present TLS_CERT_FILE",
        ),
    )
    TLS_CA_FILE: str = field(
        default="",
        metadata=_meta(
            "str",
            "PEM CA bundle internal clients (services, CLI) verify meta's and discovery's certificates with; "
            "empty: TLS_CLIENT_CA_FILE, else the system's roots",
        ),
    )
    TLS_SERVER_NAME: str = field(
        default="",
        metadata=_meta(
            "str",
            "name internal clients and mishards-healthcheck expect in the services' certificate; empty: the host "
            "of the address dialled (the health check: localhost)",
        ),
    )
    MILVUS_BACKEND_TLS_CA_FILE: str = field(
        default="",
        metadata=_meta("str", "PEM CA bundle: set, router, meta and discovery reach Milvus instances over TLS"),
    )
    DEFAULT_SHARDS_NUM: int = field(
        default=2, metadata=_meta("int", "shards of a new collection when the request gives none", 1, 64)
    )
    READ_REPLICAS: str = field(
        default="1",
        metadata=_meta(
            "str",
            "read-only replicas per shard, 0-16, or all (one on every read-only instance); capped by the read-only "
            "instances present",
        ),
    )
    REPLICA_MAX_LAG: int = field(
        default=10000,
        metadata=_meta("int", "log entries a replica may fall behind before it is refilled from a snapshot", 1),
    )
    MILVUS_BACKEND_TOKEN: str = field(
        default="", metadata=_meta("str", "token sent to backends (user:password or API key)")
    )
    AUTHORIZATION_ENABLED: bool = field(
        default=False,
        metadata=_meta(
            "bool",
            "the router requires Milvus credentials (user:password) and enforces RBAC, as Milvus's "
            "common.security.authorizationEnabled — docs/security.md",
        ),
    )
    ROOT_PASSWORD: str = field(
        default="Milvus", metadata=_meta("str", "password of the root user that meta creates at its first start")
    )
    BACKEND_TIMEOUT: float = field(default=60.0, metadata=_meta("float", "seconds a backend call may take", 0.1))
    ID_BLOCK_SIZE: int = field(
        default=10000, metadata=_meta("int", "ids the router takes from meta at a time", 1, 10_000_000)
    )
    GRACE_PERIOD: float = field(default=5.0, metadata=_meta("float", "seconds to drain requests on SIGTERM", 0))
    ROUTER_WORKERS: int = field(
        default=1,
        metadata=_meta(
            "int",
            "router processes serving SERVER_PORT together (SO_REUSEPORT), each a full router; more than 1: "
            "mishards-router supervises them, worker 0 serves METRICS_PORT with every worker's metrics",
            1,
            64,
        ),
    )
    WRITE_ACK: str = field(
        default="logged",
        metadata=_meta(
            "str",
            "when a write is acknowledged: logged (once meta's log holds it durably, as Milvus once its queue does) "
            "or applied (once every shard's primary applied it; a rejection then aborts it)",
            choices=("logged", "applied"),
        ),
    )
    WRITE_BACKLOG_LIMIT: int = field(
        default=256 << 20,
        metadata=_meta(
            "int",
            "bytes of logged writes a shard's primary may have yet to apply; past it writes get Milvus's rate-limit "
            "status (code 8)",
            1 << 20,
        ),
    )
    MAX_INFLIGHT_BYTES: int = field(
        default=256 << 20,
        metadata=_meta(
            "int",
            "bytes of requests (serialized size) the router works on at once; the rest wait in a FIFO queue, and a "
            "request larger than this is admitted alone; 0: no limit",
            0,
        ),
    )
    INFLIGHT_QUEUE_TIMEOUT: float = field(
        default=30.0,
        metadata=_meta(
            "float",
            "seconds a request may wait for admission under MAX_INFLIGHT_BYTES (the client's deadline may end it "
            "sooner); then Milvus's rate-limit status (code 8)",
            0,
        ),
    )
    READ_PASSTHROUGH: bool = field(
        default=True,
        metadata=_meta(
            "bool",
            "a search or query that touches one shard and needs no merge is answered with the backend's bytes, "
            "only its top-level fields rewritten, instead of decoded and encoded again",
        ),
    )
    MAX_HYBRID_REQUESTS: int = field(
        default=64,
        metadata=_meta("int", "sub-searches a HybridSearch may carry; more get a parameter error (code 1100)", 1, 1024),
    )
    READ_WAIT_TIMEOUT: float = field(
        default=30.0,
        metadata=_meta(
            "float",
            "seconds a Strong, Session or guarantee_timestamp read waits for a copy of each shard to apply the writes "
            "it must see (the client's deadline may end it sooner)",
            0.1,
        ),
    )
    PRIMARY_FAILOVER_AFTER: float = field(
        default=30.0,
        metadata=_meta(
            "float",
            "seconds a shard's primary may be unreachable before meta promotes its most caught-up ready replica",
            1,
        ),
    )
    REBALANCE: str = field(
        default="auto",
        metadata=_meta(
            "str",
            "auto: meta moves primaries so that no writable instance holds more than ceil(S/W) of a collection's "
            "(and off read-only or draining instances); manual: it moves nothing on its own",
            choices=("auto", "manual"),
        ),
    )
    FILL_CONCURRENCY: int = field(
        default=2,
        metadata=_meta("int", "copies (replicas, shard moves) filled from a snapshot at the same time", 1, 64),
    )
    BOUNDED_STALENESS_MS: int = field(
        default=5000,
        metadata=_meta(
            "int",
            "a Bounded read sees every write acknowledged this many milliseconds before it (Milvus's gracefulTime)",
            0,
            3_600_000,
        ),
    )
    MISHARDS_TEST_PAUSE_APPLY: str = field(
        default="",
        metadata=_meta(
            "str",
            "tests only: instance identity whose copies stop applying the mutation log (a lagging replica on demand)",
        ),
    )
    REPLICA_DOWN_GRACE: float = field(
        default=600.0,
        metadata=_meta(
            "float",
            "seconds a replica may be down or failing before it no longer holds the log back (it is refilled from "
            "a snapshot when it returns)",
            0,
        ),
    )

    def __repr__(self) -> str:  # never print secrets
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("MILVUS_BACKEND_TOKEN", "DISCOVERY_CONSUL_TOKEN", "MISHARDS_INTERNAL_TOKEN", "ROOT_PASSWORD"):
            if shown[secret]:
                shown[secret] = "***"
        return f"Settings({shown})"

    def __post_init__(self) -> None:
        if bool(self.TLS_CERT_FILE) != bool(self.TLS_KEY_FILE):
            raise SettingsError("settings TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")
        if self.TLS_CLIENT_CA_FILE and not self.TLS_CERT_FILE:
            raise SettingsError("setting TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE (mutual TLS is TLS)")

    def read_replicas(self, readonly: int) -> int:
        """Replicas per shard with `readonly` read-only instances present (READ_REPLICAS=all: one on each)."""
        return readonly if self.READ_REPLICAS == "all" else min(int(self.READ_REPLICAS), readonly)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _coerce(f: dataclasses.Field[Any], raw: Any) -> Any:
    meta = f.metadata
    name = f.name
    kind = meta["kind"]
    if kind == "bool":
        return _parse_bool(name, raw)
    if kind == "int":
        return _parse_int(name, raw, meta["min"], meta["max"])
    if kind == "float":
        return _parse_float(name, raw, meta["min"])
    if kind == "list":
        return _parse_list(raw)
    value = "" if raw is None else str(raw).strip()
    _check_str(name, value)
    choices = meta["choices"]
    if choices:
        canon = value.upper() if name == "LOG_LEVEL" else value
        if canon not in choices:
            raise SettingsError(f"setting {name}={raw!r} is not one of {', '.join(choices)}")
        return canon
    return value


def _check_str(name: str, value: str) -> None:
    if name == "TIMEZONE":
        try:
            zoneinfo.ZoneInfo(value or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"setting TIMEZONE={value!r} is not a time zone (e.g. UTC, Europe/Berlin)") from None
    if name == "READ_REPLICAS" and value != "all" and not (value.isdigit() and 0 <= int(value) <= 16):
        raise SettingsError(f"setting READ_REPLICAS={value!r} is not a number of replicas (0-16) or all")
    if name in TLS_FILE_SETTINGS and value and not os.path.isfile(value):
        raise SettingsError(f"setting {name}={value!r} is not a readable file")
    if name == "TRACING_EXPORTER_ENDPOINT" and value and not value.startswith(("http://", "https://")):
        raise SettingsError(f"setting TRACING_EXPORTER_ENDPOINT={value!r} must start with http:// or https://")


# Settings of the original Mishards that this one no longer reads, and what to set instead.
REMOVED_SETTINGS: dict[str, str] = {
    "ROUTER_CLASS_TEST_NAME": "tests set ROUTER_CLASS_NAME like any deployment",
    "SQL_TEST_ECHO": "set SQL_ECHO",
    "TESTING": "nothing: there is no test mode",
}


def removed_settings_in(values: Mapping[str, Any]) -> list[str]:
    """A warning for each removed setting that is still set, saying what to set instead."""
    return [
        f"setting {name} is no longer read ({instead}); remove it"
        for name, instead in REMOVED_SETTINGS.items()
        if name in values
    ]


def settings_from_mapping(values: Mapping[str, Any]) -> Settings:
    """Build settings from raw values (strings or typed); unknown keys are ignored."""
    kwargs: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in values and values[f.name] is not None:
            kwargs[f.name] = _coerce(f, values[f.name])
    return Settings(**kwargs)


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: str | None = ".env") -> Settings:
    """Read settings from a settings file, `.env` and the environment (later wins).

    Raises SettingsError naming the first setting with an unusable value.
    """
    env = dict(os.environ if environ is None else environ)
    settings_file = env.get("MISHARDS_SETTINGS_FILE", "")
    loader = Dynaconf(
        envvar_prefix=False,
        environments=False,
        load_dotenv=bool(dotenv_path) and os.path.exists(dotenv_path or ""),
        dotenv_path=dotenv_path,
        settings_files=[settings_file] if settings_file else [],
        core_loaders=["YAML", "TOML", "JSON"],
        auto_cast=False,
    )
    raw: dict[str, Any] = {}
    for f in fields(Settings):
        value = loader.get(f.name, None)
        if value is not None:
            raw[f.name] = value
    # Explicit environ wins over what dynaconf read from the process environment.
    for f in fields(Settings):
        if f.name in env:
            raw[f.name] = env[f.name]
    set_anywhere = {name for name in REMOVED_SETTINGS if name in env or loader.get(name, None) is not None}
    for warning in removed_settings_in(dict.fromkeys(set_anywhere)):
        logging.getLogger("mishards.settings").warning(warning)
    return settings_from_mapping(raw)


def describe_settings() -> list[tuple[str, str, str]]:
    """(name, default, meaning) of every setting, for the README table and `.env.example`."""
    rows = []
    for f in fields(Settings):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        if isinstance(default, list):
            default = ",".join(default)
        if isinstance(default, bool):
            default = str(default).lower()
        rows.append((f.name, str(default), f.metadata["doc"]))
    return rows
