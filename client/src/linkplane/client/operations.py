"""Handles on long-running operations: `AsyncOperation` and its blocking twin `Operation`.

Mutations that wait on AWS return a `google.longrunning.Operation`; these handles wrap it so
callers can `result()` it like a future. Waiting polls `GetOperation` with backoff; with an
`on_progress` callback it also reads the operation's target resource (`metadata.target`) so a
caller can show state transitions (CREATING -> ACTIVE), not only progress messages. Responses
are unpacked from `Any` by their type URL, so the handle needs no per-method knowledge;
`google.protobuf.Empty` (deletes) becomes None and `Operation.error` becomes `OperationFailed`.
A handle reaches its client only through the public methods named by `AsyncOperationClient` /
`OperationClient`, so it works with any client that has them.
"""

# ASYNC109: `timeout` is the gRPC deadline sent to the server (it propagates, AIP-style);
# asyncio.timeout() would only stop waiting locally and leave the server working.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from google.longrunning import operations_pb2
from google.protobuf import any_pb2, descriptor_pool, message, message_factory

from linkplane.client import config as config_
from linkplane.client import errors, names
from linkplane.v1 import common_pb2

__all__ = [
    "AsyncOperation",
    "AsyncOperationClient",
    "Operation",
    "OperationClient",
    "ProgressCallback",
    "unpack_any",
]

ResponseT = TypeVar("ResponseT")

ProgressCallback = Callable[
    [common_pb2.OperationMetadata, message.Message | None], "Awaitable[None] | None"
]
"""`on_progress(metadata, resource)`: called when the progress message or the target
resource's state changes. `resource` is the target (a Service or Connection) as read just then,
or None when it has no Get method or is already gone. Async callers may pass a coroutine
function."""

_EMPTY = "google.protobuf.Empty"


def unpack_any(packed: any_pb2.Any) -> message.Message | None:
    """Unpack an `Any` into its generated message class, looked up by type URL.

    Returns None for `google.protobuf.Empty`, and the `Any` itself for a type this process has
    not imported (a newer server), rather than failing.
    """
    type_name = packed.TypeName()
    if not type_name or type_name == _EMPTY:
        return None
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError:
        return packed
    unpacked = message_factory.GetMessageClass(descriptor)()
    packed.Unpack(unpacked)
    return unpacked


def _state_of(resource: message.Message | None) -> int | None:
    if resource is None:
        return None
    state = getattr(resource, "state", None)
    return state if isinstance(state, int) else None


class AsyncOperationClient(Protocol):
    """What an `AsyncOperation` needs of the client that returned it: `AsyncClient` is one.

    Only public client methods, so a handle works with any client that has them (a wrapper, a
    test double) and the clients keep their internals to themselves.
    """

    config: config_.ClientConfig

    async def get_operation(
        self, *, name: str, timeout: float | None = None
    ) -> AsyncOperation[message.Message | None]: ...

    async def cancel_operation(self, *, name: str, timeout: float | None = None) -> None: ...

    async def get_service(self, *, name: str, timeout: float | None = None) -> message.Message: ...

    async def get_connection(
        self, *, name: str, timeout: float | None = None
    ) -> message.Message: ...


class OperationClient(Protocol):
    """What a blocking `Operation` needs of the client that returned it: `Client` is one."""

    config: config_.ClientConfig

    def get_operation(
        self, *, name: str, timeout: float | None = None
    ) -> Operation[message.Message | None]: ...

    def cancel_operation(self, *, name: str, timeout: float | None = None) -> None: ...

    def get_service(self, *, name: str, timeout: float | None = None) -> message.Message: ...

    def get_connection(self, *, name: str, timeout: float | None = None) -> message.Message: ...


class _OperationBase(Generic[ResponseT]):
    """What both handles share: the latest `Operation` proto and how to read it."""

    def __init__(self, proto: operations_pb2.Operation) -> None:
        self._proto = proto
        self._last_progress: tuple[str, int | None, bool] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} done={self.done}>"

    @property
    def proto(self) -> operations_pb2.Operation:
        """The latest `google.longrunning.Operation` seen."""
        return self._proto

    @property
    def name(self) -> str:
        """The operation's name, `operations/{id}`."""
        return str(self._proto.name)

    @property
    def done(self) -> bool:
        """Whether the operation has finished (successfully or not), as of the last poll."""
        return bool(self._proto.done)

    @property
    def metadata(self) -> common_pb2.OperationMetadata:
        """The operation's `OperationMetadata` (target, verb, progress message, ...)."""
        metadata = common_pb2.OperationMetadata()
        if self._proto.HasField("metadata"):
            self._proto.metadata.Unpack(metadata)
        return metadata

    @property
    def error(self) -> errors.LinkplaneError | None:
        """The mapped `Operation.error` if the operation failed, else None."""
        if self._proto.HasField("error"):
            return errors.from_status(self._proto.error)
        return None

    def _outcome(self) -> ResponseT:
        error = self.error
        if error is not None:
            raise errors.OperationFailed(self.name, error)
        response: Any = (
            unpack_any(self._proto.response) if self._proto.HasField("response") else None
        )
        return response  # type: ignore[no-any-return]

    def _progress_changed(self, resource: message.Message | None) -> bool:
        key = (self.metadata.progress_message, _state_of(resource), self.done)
        if key == self._last_progress:
            return False
        self._last_progress = key
        return True

    def _poll_delay(
        self,
        config: config_.ClientConfig,
        attempt: int,
        deadline: float | None,
        timeout: float | None,
    ) -> float:
        """Seconds `result()` waits before its next poll: the poll backoff, cut to what is left
        of its `timeout` (which ends at `deadline`); `OperationTimeout` once nothing is left."""
        delay = config.poll_backoff.delay(attempt)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.OperationTimeout(self.name, timeout or 0.0)
            delay = min(delay, remaining)
        return delay


class AsyncOperation(_OperationBase[ResponseT]):
    """A long-running operation, for `AsyncClient`. `await op.result()` waits for it."""

    def __init__(self, client: AsyncOperationClient, proto: operations_pb2.Operation) -> None:
        super().__init__(proto)
        self._client = client

    async def refresh(self, *, timeout: float | None = None) -> AsyncOperation[ResponseT]:
        """Re-read the operation from the server (GetOperation); returns self."""
        latest = await self._client.get_operation(name=self.name, timeout=timeout)
        self._proto = latest.proto
        return self

    async def cancel(self, *, timeout: float | None = None) -> None:
        """Ask the server to cancel the operation (best effort; it may still complete)."""
        await self._client.cancel_operation(name=self.name, timeout=timeout)

    async def result(
        self, timeout: float | None = None, *, on_progress: ProgressCallback | None = None
    ) -> ResponseT:
        """Wait until the operation is done and return its unpacked response.

        Returns the typed response (a `Service`, `Connection`, `AcceptServiceConnectionsResponse`,
        ...) or None for deletes. Raises `OperationFailed` if the operation failed and
        `OperationTimeout` (a `TimeoutError`) if `timeout` seconds pass first; None waits as long
        as it takes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            if on_progress is not None:
                await self._report(on_progress)
            if self.done:
                return self._outcome()
            delay = self._poll_delay(self._client.config, attempt, deadline, timeout)
            await asyncio.sleep(delay)
            attempt += 1
            await self.refresh()

    async def _report(self, on_progress: ProgressCallback) -> None:
        resource = await self._read_target(self.metadata.target)
        if self._progress_changed(resource):
            outcome = on_progress(self.metadata, resource)
            if inspect.isawaitable(outcome):
                await outcome

    async def _read_target(self, target: str) -> message.Message | None:
        """The operation's target resource as it is now, or None if gone or not readable."""
        kind = names.kind_of(target)
        try:
            if kind == "services":
                return await self._client.get_service(name=target)
            if kind == "connections":
                return await self._client.get_connection(name=target)
        except errors.NotFound:
            return None
        return None


class Operation(_OperationBase[ResponseT]):
    """A long-running operation, for the blocking `Client`. `op.result()` waits for it."""

    def __init__(self, client: OperationClient, proto: operations_pb2.Operation) -> None:
        super().__init__(proto)
        self._client = client

    def refresh(self, *, timeout: float | None = None) -> Operation[ResponseT]:
        """Re-read the operation from the server (GetOperation); returns self."""
        self._proto = self._client.get_operation(name=self.name, timeout=timeout).proto
        return self

    def cancel(self, *, timeout: float | None = None) -> None:
        """Ask the server to cancel the operation (best effort; it may still complete)."""
        self._client.cancel_operation(name=self.name, timeout=timeout)

    def result(
        self, timeout: float | None = None, *, on_progress: ProgressCallback | None = None
    ) -> ResponseT:
        """Wait until the operation is done and return its unpacked response.

        Same contract as `AsyncOperation.result`: the typed response or None for deletes,
        `OperationFailed` on failure, `OperationTimeout` after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            if on_progress is not None:
                resource = self._read_target(self.metadata.target)
                if self._progress_changed(resource):
                    on_progress(self.metadata, resource)
            if self.done:
                return self._outcome()
            delay = self._poll_delay(self._client.config, attempt, deadline, timeout)
            time.sleep(delay)
            attempt += 1
            self.refresh()

    def _read_target(self, target: str) -> message.Message | None:
        """The operation's target resource as it is now, or None if gone or not readable."""
        kind = names.kind_of(target)
        try:
            if kind == "services":
                return self._client.get_service(name=target)
            if kind == "connections":
                return self._client.get_connection(name=target)
        except errors.NotFound:
            return None
        return None
