"""The router's one client of meta: every Meta RPC the router makes, by name, with its timeout."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import message as pb_message

from mishards.common.security import InternalSecurity
from mishards.common.server import internal_channel
from mishards.v1 import meta_pb2, meta_pb2_grpc

# Unary calls answered from meta's store or memory: the catalog, a timestamp, an id block, the auth state.
META_CALL_TIMEOUT = 30.0
# A DDL method runs on every copy before meta answers (a load or an index build can take minutes).
DDL_TIMEOUT = 600.0
# A credential or RBAC change: bcrypt and one store write.
RBAC_TIMEOUT = 60.0


class MetaClient:
    """Wraps the Meta stub; callers name what they ask for instead of passing the stub around.

    Unary calls that the router cannot do without wait for a restarting meta (`wait_for_ready`)
    rather than fail at once; each raises `grpc.aio.AioRpcError` when meta does not answer in time.
    """

    def __init__(self, stub: meta_pb2_grpc.MetaStub, channel: grpc.aio.Channel | None = None) -> None:
        self.stub = stub
        self._channel = channel

    @classmethod
    def connect(cls, address: str, security: InternalSecurity | None = None) -> MetaClient:
        """A client of the meta at `address` over its own channel (closed by `close`)."""
        channel = internal_channel(address, security or InternalSecurity())
        return cls(meta_pb2_grpc.MetaStub(channel), channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    # --- the catalog and its change feed ------------------------------------------------------

    async def get_catalog(self) -> meta_pb2.Catalog:
        return await self.stub.GetCatalog(meta_pb2.GetCatalogRequest(), timeout=META_CALL_TIMEOUT, wait_for_ready=True)

    def watch_catalog(self) -> Any:
        """The change feed: an async iterator of `CatalogVersion`, one per catalog change (no timeout)."""
        return self.stub.WatchCatalog(meta_pb2.WatchCatalogRequest())

    async def copy_states(self, timeout: float) -> meta_pb2.ListCopiesResponse:
        """Every copy's state and the moves in progress (`ListCopies`), for the topology page."""
        return await self.stub.ListCopies(meta_pb2.ListCopiesRequest(), timeout=timeout)

    # --- the cluster's clock and ids ----------------------------------------------------------

    async def timestamp(self) -> int:
        """A fresh Mishards hybrid timestamp."""
        request = meta_pb2.GetTimestampRequest(count=1)
        answer = await self.stub.GetTimestamp(request, timeout=META_CALL_TIMEOUT, wait_for_ready=True)
        return int(answer.timestamp)

    async def allocate_ids(self, count: int) -> meta_pb2.AllocateIdsResponse:
        """A block of `count` primary keys, unique cluster-wide."""
        return await self.stub.AllocateIds(
            meta_pb2.AllocateIdsRequest(count=count), timeout=META_CALL_TIMEOUT, wait_for_ready=True
        )

    # --- users and grants ---------------------------------------------------------------------

    async def auth_state(self) -> meta_pb2.AuthState:
        return await self.stub.GetAuthState(
            meta_pb2.GetAuthStateRequest(), timeout=META_CALL_TIMEOUT, wait_for_ready=True
        )

    async def execute_rbac(
        self, method: str, request: pb_message.Message, db_name: str, caller: str
    ) -> meta_pb2.ExecuteRbacResponse:
        """Hand a credential or RBAC method to meta; its answer carries the Milvus response and the auth version."""
        return await self.stub.ExecuteRbac(
            meta_pb2.ExecuteRbacRequest(
                method=method, request=request.SerializeToString(), db_name=db_name, caller=caller
            ),
            timeout=RBAC_TIMEOUT,
            wait_for_ready=True,
        )

    # --- DDL and the write log ----------------------------------------------------------------

    async def execute_ddl(self, method: str, request: pb_message.Message, db_name: str) -> meta_pb2.ExecuteDdlResponse:
        """Hand a DDL method to meta; its answer carries the Milvus response and the catalog version."""
        return await self.stub.ExecuteDdl(
            meta_pb2.ExecuteDdlRequest(method=method, request=request.SerializeToString(), db_name=db_name),
            timeout=DDL_TIMEOUT,
            wait_for_ready=True,  # meta restarting: the change waits for it rather than fail at once
        )

    async def append_mutations(
        self, request: meta_pb2.AppendMutationsRequest, timeout: float
    ) -> meta_pb2.AppendMutationsResponse:
        """Log one write; a refusal comes back as a Milvus status in the answer, not as an RPC error."""
        return await self.stub.AppendMutations(request, timeout=timeout, wait_for_ready=True)

    async def read_positions(
        self, request: meta_pb2.ReadPositionsRequest, timeout: float, wait_for_ready: bool = False
    ) -> meta_pb2.ReadPositionsResponse:
        """Each shard's log position of a timestamp and how far each copy has applied it."""
        return await self.stub.GetReadPositions(request, timeout=timeout, wait_for_ready=wait_for_ready)
