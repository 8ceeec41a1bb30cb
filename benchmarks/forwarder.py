"""A bare gRPC forwarding hop: every unary call's raw bytes go to one upstream and back.

This is the floor of any Python proxy on this machine: no parsing, no merging, just one
grpc.aio server and one grpc.aio channel. The benchmark puts it between the client and
the direct Milvus so that the router's overhead can be compared with the unavoidable one.

    python -m benchmarks.forwarder --port 19650 --upstream 127.0.0.1:19600
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

# As the router: 256 MB messages each way, pymilvus's keepalive pings allowed.
OPTIONS = [
    ("grpc.max_send_message_length", 256 << 20),
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_pings_without_data", 0),
]


class ForwardingHandler(grpc.GenericRpcHandler):
    """Forwards every unary-unary method, undecoded, to ``channel``."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            handler = grpc.unary_unary_rpc_method_handler(self._forward(method))
            self._handlers[method] = handler
        return handler

    def _forward(self, method: str) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
        call = self.channel.unary_unary(method)

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            metadata = tuple(
                (k, v) for k, v in (context.invocation_metadata() or ()) if not k.startswith((":", "grpc-"))
            )
            try:
                return bytes(await call(request, metadata=metadata))
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
                raise  # unreachable: abort raises

        return forward


async def serve(port: int, upstream: str, host: str = "127.0.0.1") -> None:
    channel = grpc.aio.insecure_channel(upstream, options=OPTIONS)
    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((ForwardingHandler(channel),))
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)
    await channel.close()


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port of the Milvus to forward to")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
