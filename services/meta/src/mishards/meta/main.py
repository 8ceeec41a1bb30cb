"""mishards-meta: the catalog, desired state, ids, timestamps and DDL."""

from __future__ import annotations

import logging

from mishards.common.backends import BackendPool
from mishards.common.entry import run_service
from mishards.common.interceptors import TelemetryServerInterceptor
from mishards.common.membership import MembershipWatcher
from mishards.common.metrics import HttpServer, default_port
from mishards.common.security import InternalSecurity, server_interceptors
from mishards.common.server import Server, create_server, serve
from mishards.common.settings import Settings
from mishards.meta.ddl import DdlExecutor
from mishards.meta.moves import ShardMover
from mishards.meta.mutations import MutationLog
from mishards.meta.rbac import RbacExecutor, RbacStore
from mishards.meta.replicas import ReplicaManager
from mishards.meta.servicer import CatalogFeed, MetaServicer
from mishards.meta.store import Store
from mishards.meta.tso import TimestampOracle
from mishards.meta.versions import InstanceVersions
from mishards.v1 import meta_pb2_grpc

log = logging.getLogger("mishards.meta")


class MetaService:
    """Everything meta runs, built from settings; `start()`/`stop()` for tests and main."""

    def __init__(self, settings: Settings, port: int | None = None, metrics_port: int | None = None) -> None:
        self.settings = settings
        self.store = Store(settings.SQLALCHEMY_DATABASE_URI, echo=settings.SQL_ECHO)
        self.store.migrate()
        self.rbac = RbacStore(self.store)
        self.rbac.bootstrap(settings.ROOT_PASSWORD)  # root and the built-in roles, at the first start only
        self.tso = TimestampOracle(self.store.reserve_timestamp_window)
        security = InternalSecurity.from_settings(settings)
        self.membership = MembershipWatcher(settings.DISCOVERY_ADDRESS, security)
        self.backends = BackendPool(settings.MILVUS_BACKEND_TOKEN, settings.MILVUS_BACKEND_TLS_CA_FILE)
        self.feed = CatalogFeed(self.store.catalog_version())
        self.log = MutationLog(
            self.store,
            self.backends,
            self.membership.address_of,
            settings.BACKEND_TIMEOUT,
            self.tso,
            backlog_limit=settings.WRITE_BACKLOG_LIMIT,
            replica_down_grace=settings.REPLICA_DOWN_GRACE,
            # the replica manager, built below on this log, refills a replica that cannot follow
            on_replica_lost=lambda *lost: self.replicas.refill(*lost),
            paused_instance=settings.MISHARDS_TEST_PAUSE_APPLY,
        )
        self.ddl = DdlExecutor(
            self.store,
            self.tso,
            self.membership,
            self.backends,
            settings,
            self.feed.publish,
            on_drop=self.log.forget_collection,
        )
        self.replicas = ReplicaManager(
            self.store, self.membership, self.backends, self.log, settings, self.feed.publish, ddl_lock=self.ddl.lock
        )
        self.mover = ShardMover(
            self.store,
            self.membership,
            self.backends,
            self.log,
            self.replicas,
            settings,
            self.feed.publish,
            ddl_lock=self.ddl.lock,
        )
        self.versions = InstanceVersions(self.store, self.membership, self.backends, self.feed.publish)
        http_port = default_port(settings.METRICS_PORT, "meta") if metrics_port is None else metrics_port
        self.http = HttpServer(settings.METRICS_HOST, http_port)
        self.server: Server = create_server(
            settings.SERVER_HOST,
            settings.META_SERVER_PORT if port is None else port,
            interceptors=[TelemetryServerInterceptor("meta"), *server_interceptors("meta", settings)],
            tls=security.tls,
        )
        self.servicer = MetaServicer(
            self.store,
            self.tso,
            self.ddl,
            self.feed,
            self.log,
            self.mover,
            rbac=RbacExecutor(self.rbac),
            fill_progress=self.replicas.progress,
        )
        meta_pb2_grpc.add_MetaServicer_to_server(self.servicer, self.server.server)

    async def on_start(self) -> None:
        await self.http.start()
        await self.membership.start(wait_first=60.0)
        await self.ddl.reconcile()
        self.versions.start()
        self.log.start()
        self.replicas.start()
        self.mover.start()

    async def on_stop(self) -> None:
        await self.mover.stop()
        await self.replicas.stop()
        await self.versions.stop()
        await self.log.stop()
        await self.feed.close()
        await self.membership.stop()
        await self.backends.close()
        self.store.engine.dispose()
        await self.http.stop()

    async def run(self) -> None:
        await serve(self.server, "meta", self.on_start, self.on_stop, self.settings.GRACE_PERIOD)


def main() -> None:
    run_service("meta", MetaService)


if __name__ == "__main__":
    main()
