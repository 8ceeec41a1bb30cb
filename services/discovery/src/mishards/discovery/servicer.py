"""The `mishards.v1.Discovery` gRPC servicer: a thin reader of the `MembershipBoard`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from mishards.discovery.membership import MembershipBoard
from mishards.v1 import discovery_pb2, discovery_pb2_grpc


class DiscoveryServicer(discovery_pb2_grpc.DiscoveryServicer):
    """Answers ListInstances and WatchInstances from the board; never fails a call."""

    def __init__(self, board: MembershipBoard) -> None:
        self.board = board

    async def ListInstances(
        self,
        request: discovery_pb2.ListInstancesRequest,
        context: grpc.aio.ServicerContext,
    ) -> discovery_pb2.Membership:
        """The current membership snapshot."""
        return self.board.current()

    async def WatchInstances(
        self,
        request: discovery_pb2.WatchInstancesRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[discovery_pb2.Membership]:
        """The current snapshot at once, then each newer version in order.

        Ends with status OK when the service stops serving; a watcher that falls far
        behind skips to newer snapshots (each message is a full snapshot).
        """
        async for snapshot in self.board.watch():
            yield snapshot
