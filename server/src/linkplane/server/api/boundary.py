"""The request boundary: every call is decoded and checked here before any handler runs.

A server interceptor wraps each async handler so that

- bytes that are not a valid request message answer INVALID_ARGUMENT (grpc.aio's default is
  UNKNOWN "Unexpected DecodeError", which reads like a server bug and invites retries), and
- every string of the decoded request passes `fields.check_request` (length limits matching
  the columns, no NUL or other control characters, canonical request ids): one place for the
  rules every field shares, so no handler, validate_only path or SQL statement sees such a
  value, and a new RPC is covered without code of its own.

Handlers that are not coroutines or async generators (none of linkplane's) pass through.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc_status import rpc_status

from linkplane.server.api import fields, rpc
from linkplane.server.domain import errors
from linkplane.server.protocol import statuses

Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Context], Awaitable[Any]]
StreamHandler = Callable[[Any, Context], AsyncIterator[Any]]
# The stubs make ServerInterceptor generic; at run time it is a plain class.
if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class Malformed:
    """What a request deserializer returns for bytes that do not parse as the message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class Boundary(_Interceptor):
    """Turns malformed and unacceptable requests into INVALID_ARGUMENT before the handler."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method (grpc's stubs say it never is)
            return handler
        if handler.request_streaming or handler.request_deserializer is None:
            return handler
        method = str(handler_call_details.method).rsplit("/", 1)[-1]
        deserializer = _tolerant(handler.request_deserializer)
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            return grpc.unary_unary_rpc_method_handler(
                _unary(cast(Handler, handler.unary_unary), method),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(
                _stream(cast(StreamHandler, handler.unary_stream), method),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def tolerant(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as error:  # DecodeError, or anything a parser raises on bad bytes
            return Malformed(error)

    return tolerant


async def _admit(request: Any, context: Context, method: str) -> None:
    """Abort the call with INVALID_ARGUMENT unless the request may reach its handler."""
    try:
        _check(request, method)
    except errors.InvalidArgument as error:
        rpc.RPC_TOTAL.labels(method, "INVALID_ARGUMENT").inc()
        status = rpc_status.to_status(statuses.to_status(error))
        await context.abort(status.code, status.details, status.trailing_metadata)


def _check(request: Any, method: str) -> None:
    if isinstance(request, Malformed):
        raise errors.InvalidArgument(
            [errors.FieldViolation("", "is not a valid request message for this method")],
            message=f"the request is not a valid {method} message: {request.error}",
            reason="MALFORMED_REQUEST",
        )
    fields.check_request(request)


def _unary(behavior: Handler, method: str) -> Handler:
    async def unary(request: Any, context: Context) -> Any:
        await _admit(request, context, method)
        return await behavior(request, context)

    return unary


def _stream(behavior: StreamHandler, method: str) -> StreamHandler:
    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        await _admit(request, context, method)
        async for response in behavior(request, context):
            yield response

    return stream
