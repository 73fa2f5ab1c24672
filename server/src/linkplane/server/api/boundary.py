"""The request boundary: no handler sees a request that was not decoded and checked.

A server interceptor wraps every async handler of every service (linkplane's, Operations,
IAMPolicy, health, reflection) so that

- bytes that are not a valid request message answer INVALID_ARGUMENT (grpc.aio's default is
  UNKNOWN "Unexpected DecodeError", which reads like a server bug and invites retries), and
- every string of the decoded request passes `fields.check_request` (length limits matching
  the columns, no NUL or other control characters, canonical request ids): one place for the
  rules every field shares, so no handler, validate_only path or SQL statement sees such a
  value, and a new RPC is covered without code of its own.

Order matters: validation errors must not answer callers that may not call at all (they
would learn what the server accepts, and its limits, without credentials). Handlers wrapped
by `rpc.unary`/`rpc.streaming` carry `fields.CHECKS_AFTER_AUTHENTICATION`: for those the
boundary only decodes tolerantly and the wrapper runs the same checks itself, after
authentication (malformed bytes) and after authorization where the request names its
resource (field checks). Every other handler (health and reflection, which are anonymous;
any future handler that is not wrapped) is checked here, before it runs.

Handlers that are not coroutines or async generators (none are) pass through.
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

Malformed = fields.Malformed


class Boundary(_Interceptor):
    """Turns malformed and unacceptable requests into INVALID_ARGUMENT before the handler.

    `wire(response, serialize)` serializes server-streamed responses: the Watch hub's, so one
    live event sent on a thousand streams is serialized once (api/watches.py, `Hub.wire`).
    """

    def __init__(self, wire: Callable[[Any, Callable[[Any], bytes]], bytes] | None = None) -> None:
        self.wire = wire

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        # None for an unknown method (grpc's stubs say it never is).
        if handler is None:
            return handler
        if handler.request_deserializer is None:
            return handler
        method = str(handler_call_details.method).rsplit("/", 1)[-1]
        deserializer = _tolerant(handler.request_deserializer)
        serializer = handler.response_serializer
        if handler.unary_unary is not None:
            behavior: Any = handler.unary_unary
            if _checks_itself(behavior):
                wrapped: Any = behavior
            elif inspect.iscoroutinefunction(behavior):
                wrapped = _unary(cast(Handler, behavior), method)
            else:
                return handler
            return grpc.unary_unary_rpc_method_handler(
                wrapped, request_deserializer=deserializer, response_serializer=serializer
            )
        if handler.unary_stream is not None:
            serializer = self._streamed(serializer)
            behavior = handler.unary_stream
            if _checks_itself(behavior):
                wrapped = behavior
            elif inspect.isasyncgenfunction(behavior):
                wrapped = _stream(cast(StreamHandler, behavior), method)
            elif inspect.iscoroutinefunction(behavior):  # writes with context.write (health)
                wrapped = _unary(cast(Handler, behavior), method)
            else:
                return handler
            return grpc.unary_stream_rpc_method_handler(
                wrapped, request_deserializer=deserializer, response_serializer=serializer
            )
        if handler.stream_stream is not None:
            behavior = handler.stream_stream
            if inspect.isasyncgenfunction(behavior):  # reflection
                wrapped = _streamed_both(cast(StreamHandler, behavior), method)
            elif inspect.iscoroutinefunction(behavior):
                wrapped = _streamed_in(cast(Handler, behavior), method)
            else:
                return handler
            return grpc.stream_stream_rpc_method_handler(
                wrapped, request_deserializer=deserializer, response_serializer=serializer
            )
        if handler.stream_unary is not None and inspect.iscoroutinefunction(handler.stream_unary):
            return grpc.stream_unary_rpc_method_handler(
                _streamed_in(cast(Handler, handler.stream_unary), method),
                request_deserializer=deserializer,
                response_serializer=serializer,
            )
        return handler

    def _streamed(self, serialize: Callable[[Any], bytes] | None) -> Any:
        wire = self.wire
        if wire is None or serialize is None:
            return serialize

        def serialized(response: Any) -> bytes:
            return wire(response, serialize)

        return serialized


def _checks_itself(behavior: object) -> bool:
    """Whether the handler runs the boundary's checks itself, after authenticating."""
    return bool(getattr(behavior, fields.CHECKS_AFTER_AUTHENTICATION, False))


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
        fields.check_decoded(request, method)
        fields.check_request(request)
    except errors.InvalidArgument as error:
        rpc.RPC_TOTAL.labels(method, "INVALID_ARGUMENT").inc()
        status = rpc_status.to_status(statuses.to_status(error))
        await context.abort(status.code, status.details, status.trailing_metadata)


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


async def _checked(
    requests: AsyncIterator[Any], context: Context, method: str
) -> AsyncIterator[Any]:
    """A client stream's messages, each only once it passed (else the call aborts there)."""
    async for request in requests:
        await _admit(request, context, method)
        yield request


def _streamed_in(behavior: Handler, method: str) -> Handler:
    async def unary(requests: Any, context: Context) -> Any:
        return await behavior(_checked(requests, context, method), context)

    return unary


def _streamed_both(behavior: StreamHandler, method: str) -> StreamHandler:
    async def stream(requests: Any, context: Context) -> AsyncIterator[Any]:
        async for response in behavior(_checked(requests, context, method), context):
            yield response

    return stream
