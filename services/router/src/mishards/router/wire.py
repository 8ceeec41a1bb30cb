"""Requests whose bytes do not decode get gRPC INTERNAL, as Milvus 2.3.5's Go server answers them.

gRPC Python answers UNKNOWN ("Unexpected DecodeError") when a request's deserializer raises.
This interceptor's deserializer turns the failure into a marker instead, and the handler
answers it with INTERNAL and Go's words, before any servicer code runs. It also records
each request's size as received, for admission by size (MAX_INFLIGHT_BYTES).
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import message as pb_message
from google.protobuf import message_factory

from mishards.common.milvus_messages import SERVICE, encode_answer

# Milvus 2.3.5's answer (its space after "proto:" is a non-breaking one, chosen at random by Go's protobuf).
UNMARSHAL_ERROR = "grpc: error unmarshalling request: proto: cannot parse invalid wire-format data"


# The size of the request being served, as received: each RPC runs in its own task, so the value
# set while decoding is the one its handler reads (ByteSize() would walk a 64 MB insert: ~150 ms).
REQUEST_BYTES: contextvars.ContextVar[int | None] = contextvars.ContextVar("mishards_request_bytes", default=None)


class Undecodable:
    """What the deserializer returns for bytes that are not the request message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def decode(raw: bytes) -> Any:
        REQUEST_BYTES.set(len(raw))
        try:
            return deserialize(raw)
        except pb_message.DecodeError as exc:
            return Undecodable(exc)

    return decode


class UndecodableInterceptor(grpc.aio.ServerInterceptor):
    """Answers requests that do not decode with INTERNAL (unary and server-streaming methods)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = str(handler_call_details.method)
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = wrap_tolerant(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def wrap_tolerant(full: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The handler with the interceptor's tolerant decoding (a `Layer`, for wrapping at registration)."""
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INTERNAL, UNMARSHAL_ERROR)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        stream = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INTERNAL, UNMARSHAL_ERROR)
            async for item in stream(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    return handler


# One wrapping of a method's handler (telemetry, tolerant decoding, authentication): (full method name, handler).
Layer = Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]


def add_milvus_service(
    server: grpc.aio.Server, behaviors: Mapping[str, Callable[..., Any]], layers: Sequence[Layer]
) -> None:
    """Register MilvusService on `server`: each method's behavior (`RouterServicer.handlers()`),
    wrapped once by `layers` (innermost first).

    What `add_MilvusServiceServicer_to_server` plus server interceptors did, decided at start
    instead of per call: grpc.aio runs an interceptor chain (coroutines, a handler lookup per
    interceptor) for every RPC. Every response serializer also takes an `EncodedAnswer`.
    """
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for m in SERVICE.methods:
        behavior = behaviors[m.name]
        decode = message_factory.GetMessageClass(m.input_type).FromString
        if m.client_streaming:  # none in MilvusService; gRPC would answer UNIMPLEMENTED
            continue
        make = grpc.unary_stream_rpc_method_handler if m.server_streaming else grpc.unary_unary_rpc_method_handler
        handler = make(behavior, request_deserializer=decode, response_serializer=encode_answer)
        full = f"/{SERVICE.full_name}/{m.name}"
        for layer in layers:
            handler = layer(full, handler)
        handlers[m.name] = handler
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
