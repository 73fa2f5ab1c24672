"""What every RPC handler shares: authentication, authorization, metrics, logs, error mapping.

`@unary` and `@streaming` wrap servicer methods so that a domain error becomes its gRPC status
with details (api/errors.py), and an unexpected exception is logged with its traceback and
reported as INTERNAL — which is always a bug to fix, never a way to report bad input.
Right after authentication, the wrappers ask api/authz.py whether the caller holds the method's
permission on the request's project: the one place where authorization is enforced. The
request boundary's checks (api/boundary.py) run inside the wrappers, in an order that tells a
caller nothing it may not know: credentials, then a decodable message, then permission on the
resource the request names, then every field.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc
import structlog
from google.protobuf.message import Message
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from linkplane.server.api import authz, fields, identity, watches
from linkplane.server.api.limits import Lease, Limits
from linkplane.server.aws import permissions
from linkplane.server.domain import errors
from linkplane.server.protocol import statuses
from linkplane.server.storage import database, mutations, requests
from linkplane.server.storage.changes import ChangeFeed

log = structlog.get_logger("linkplane.api")

RPC_TOTAL = Counter("linkplane_rpc_total", "RPCs handled", ["method", "code"])
RPC_SECONDS = Histogram("linkplane_rpc_seconds", "RPC latency", ["method"])

R = TypeVar("R")


@dataclass
class Dependencies:
    """What handlers need from the process: the database, the change feed, auth, secrets."""

    db: database.Database
    feed: ChangeFeed
    authenticator: identity.Authenticator
    page_secret: bytes
    authorizer: authz.Authorizer
    # Caps on streams and concurrent calls per principal (api/limits.py), and the process's
    # one Watch fan-out (api/watches.py).
    limits: Limits = field(default_factory=Limits)
    # AWS clients and rate limiter for the one RPC that calls AWS itself (CheckAccount); None
    # in processes built without them (tests of other services).
    aws: permissions.Access | None = None
    hub: watches.Hub = field(init=False)

    def __post_init__(self) -> None:
        # Stream sends yield to unary calls in flight (watches.Turnstile).
        self.hub = watches.Hub(self.db, self.feed, busy=lambda: self.limits.calls_in_flight > 0)


class HasDeps(Protocol):
    deps: Dependencies


CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("linkplane_caller", default="")
"""The authenticated principal of the RPC being handled (request ids are scoped by it)."""


async def authenticate(deps: Dependencies, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's principal (api/identity.py); UNAUTHENTICATED without valid credentials."""
    return await deps.authenticator.authenticate(context)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> None:
    await context.abort(status.code, status.details, status.trailing_metadata)


async def _check_after_authentication(
    deps: Dependencies, request: Any, name: str, full_name: str, actor: str
) -> None:
    """The request boundary's checks after authentication, in api/boundary.py's order: a
    decodable message (only now), permission on the resource it names, then every field."""
    fields.check_decoded(request, name)
    await deps.authorizer.check(full_name, request, actor)
    fields.check_request(request)


async def _abort_as_bug(
    context: grpc.aio.ServicerContext[Any, Any], name: str, exc: Exception
) -> None:
    """An unexpected exception: logged with its traceback (call it from the `except` block),
    answered as INTERNAL."""
    log.exception("rpc.bug", method=name, error=str(exc))
    await _abort(
        context,
        rpc_status.to_status(
            statuses.internal_status(f"internal error in {name}; this is a linkplane bug")
        ),
    )


def unary(
    method: Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any], str], Awaitable[R]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]:
    """Wrap a unary handler `(self, request, context, actor)`."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(
        self: HasDeps, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> R:
        started = time.perf_counter()
        code = "OK"
        lease: Lease | None = None
        try:
            actor = await authenticate(self.deps, context)
            CALLER.set(actor)
            lease = self.deps.limits.acquire_call(actor)
            await _check_after_authentication(
                self.deps, request, name, authz.method_name(self, name), actor
            )
            return await method(self, request, context, actor)
        except errors.DomainError as error:
            code = statuses.code_of(error).name
            log.info(
                "rpc.error", method=name, code=code, reason=error.reason, message=error.message
            )
            await _abort(context, statuses.to_rpc_status(error))
            raise  # unreachable: abort raises
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code = "INTERNAL"
            await _abort_as_bug(context, name, exc)
            raise
        finally:
            if lease is not None:
                lease.release()
            RPC_TOTAL.labels(name, code).inc()
            RPC_SECONDS.labels(name).observe(time.perf_counter() - started)

    setattr(wrapper, fields.CHECKS_AFTER_AUTHENTICATION, True)
    return wrapper


def streaming(
    method: Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any], str], AsyncIterator[R]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[R]]:
    """Wrap a server-streaming handler `(self, request, context, actor)`."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(
        self: HasDeps, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[R]:
        code = "OK"
        lease: Lease | None = None
        try:
            actor = await authenticate(self.deps, context)
            CALLER.set(actor)
            lease = self.deps.limits.acquire_stream(actor)
            full_name = authz.method_name(self, name)
            await _check_after_authentication(self.deps, request, name, full_name, actor)
            async for item in method(self, request, context, actor):
                # Re-checked per event (the policy is cached, ~10 us): a revoked role ends the
                # stream at its next event instead of leaking changes for as long as it lives.
                await self.deps.authorizer.check(full_name, request, actor)
                yield item
        except errors.DomainError as error:
            code = statuses.code_of(error).name
            await _abort(context, statuses.to_rpc_status(error))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code = "INTERNAL"
            await _abort_as_bug(context, name, exc)
        finally:
            if lease is not None:
                lease.release()
            RPC_TOTAL.labels(name, code).inc()

    setattr(wrapper, fields.CHECKS_AFTER_AUTHENTICATION, True)
    return wrapper


def check_request_id(request_id: str, path: str = "request_id") -> None:
    """The canonical-UUID rule of api/fields.py (the request boundary already normalised it)."""
    fields.request_id(request_id, path)


async def replay(session: Any, method: str, request: Message) -> requests.Replay | None:
    """Reserve the caller's `request_id`, or return the first result of the caller's earlier use."""
    request_id: str = getattr(request, "request_id", "")
    if not request_id:
        return None
    digest = request_digest(request)
    earlier = await requests.claim(
        session, method=method, request_id=request_id, digest=digest, principal=CALLER.get()
    )
    if earlier is not None:
        check_replay(earlier, digest)
    return earlier


def request_digest(request: Message) -> str:
    """What tells a retry of a request from another request reusing its id."""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def check_replay(earlier: requests.Replay, digest: str) -> None:
    """Refuse a request id used before for a different request (`digest`)."""
    if earlier.digest != digest:
        raise errors.InvalidArgument(
            [errors.FieldViolation("request_id", "was already used for a different request")],
            reason="REQUEST_ID_REUSED",
        )


def outcome(
    method: str,
    request: Message,
    *,
    operation_id: str | None = None,
    response: bytes | None = None,
) -> mutations.Outcome | None:
    """What the caller's `request_id` replays from now on (None without a request_id)."""
    request_id: str = getattr(request, "request_id", "")
    if not request_id:
        return None
    return mutations.Outcome(
        method=method,
        principal=CALLER.get(),
        request_id=request_id,
        operation_id=operation_id,
        response=response,
    )
