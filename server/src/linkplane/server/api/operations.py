"""google.longrunning.Operations: read, list, wait for and delete linkplane operations.

An operation belongs to its target's project. api/authz.py checks Get/Wait/Cancel/Delete
against that project (NOT_FOUND when the caller may not see it, as for a missing one);
ListOperations lists only the operations of projects where the caller may list them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2

from linkplane.server.api import fields, rpc
from linkplane.server.domain import errors, filters, pagination
from linkplane.server.protocol import converters
from linkplane.server.storage import audit, models, operations
from linkplane.server.storage.database import Session

Context = grpc.aio.ServicerContext[Any, Any]
MAX_WAIT_SECONDS = 60.0
FILTER_FIELDS = {"done", "target"}


def _operation_id(name: str, path: str = "name") -> str:
    prefix = "operations/"
    rest = name.removeprefix(prefix)
    if not name.startswith(prefix) or not rest or "/" in rest or len(rest) > 64:
        raise errors.InvalidArgument([errors.FieldViolation(path, "must be operations/{id}")])
    return rest


async def _existing(session: Session, operation_id: str, name: str) -> models.Operation:
    """The operation, or NOT_FOUND naming it as the caller did."""
    row = await operations.get(session, operation_id)
    if row is None:
        raise errors.NotFound(name, kind="operation")
    return row


def _simple_filter(node: filters.Node | None) -> tuple[bool | None, str | None]:
    """Operations support `done = true|false` and `target = "…"`, joined by AND."""
    done: bool | None = None
    target: str | None = None
    terms = node.terms if isinstance(node, filters.AllOf) else (node,) if node else ()
    for term in terms:
        if not isinstance(term, filters.Comparison) or term.negated:
            raise errors.InvalidArgument(
                [errors.FieldViolation("filter", "only `done = …` and `target = …` joined by AND")]
            )
        if term.field == "done":
            done = term.value == "true"
        else:
            target = term.value
    return done, target


class OperationsServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self, deps: rpc.Dependencies) -> None:
        self.deps = deps

    @rpc.unary
    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        operation_id = _operation_id(request.name)
        async with self.deps.db.transaction() as session:
            return converters.operation(await _existing(session, operation_id, request.name))

    @rpc.unary
    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: Context, actor: str
    ) -> operations_pb2.ListOperationsResponse:
        if request.name not in {"", "operations"}:
            raise errors.InvalidArgument(
                [errors.FieldViolation("name", "must be empty or `operations`")]
            )
        size = pagination.page_size(request.page_size)
        node = filters.parse(
            request.filter, fields=FILTER_FIELDS, enums={"done": {"true", "false"}}
        )
        done, target = _simple_filter(node)
        # Bound to the caller too: a page token is no way to read past someone else's filter.
        key = [request.name, request.filter, actor]
        after = pagination.decode(self.deps.page_secret, key, request.page_token)
        projects = await self.deps.authorizer.visible_projects(actor, "linkplane.operations.list")
        async with self.deps.db.transaction() as session:
            rows, more = await operations.page(
                session, done=done, target=target, after=after, limit=size, projects=projects
            )
        token = pagination.encode(self.deps.page_secret, key, rows[-1].id) if more else ""
        return operations_pb2.ListOperationsResponse(
            operations=[converters.operation(r) for r in rows], next_page_token=token
        )

    @rpc.unary
    async def WaitOperation(
        self, request: operations_pb2.WaitOperationRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        """Wait until done, the request's timeout, the deadline, or 60 s, whichever is first."""
        operation_id = _operation_id(request.name)
        budget = MAX_WAIT_SECONDS
        if request.HasField("timeout"):
            budget = fields.clamped_seconds(request.timeout, budget)
        remaining = context.time_remaining()
        if remaining is not None:
            budget = min(budget, max(remaining - 0.2, 0.0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        async with self.deps.feed.subscribe() as queue:
            while True:
                async with self.deps.db.transaction() as session:
                    row = await _existing(session, operation_id, request.name)
                    message = converters.operation(row)
                left = deadline - loop.time()
                if message.done or left <= 0:
                    return message
                # Any change may finish the operation; poll as well in case a notice is lost.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, 1.0)):
                        await queue.get()

    @rpc.unary
    async def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: Context, actor: str
    ) -> empty_pb2.Empty:
        _operation_id(request.name)
        # Operations follow desired state: to stop one, change or delete its resource.
        raise errors.FailedPrecondition(
            "linkplane operations cannot be cancelled; update or delete the target resource",
            reason="CANCEL_UNSUPPORTED",
            metadata={"name": request.name},
        )

    @rpc.unary
    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: Context, actor: str
    ) -> empty_pb2.Empty:
        operation_id = _operation_id(request.name)
        async with self.deps.db.transaction() as session:
            row = await _existing(session, operation_id, request.name)
            if not row.done:
                raise errors.FailedPrecondition(
                    f"{request.name} is still running",
                    reason="OPERATION_RUNNING",
                    metadata={"name": request.name},
                )
            await operations.delete(session, operation_id)
            await audit.record(
                session,
                audit.entry(
                    actor=actor,
                    action="DeleteOperation",
                    resource=request.name,
                    resource_uid=None,
                    details={"target": row.target},
                    project=row.project,
                ),
            )
        return empty_pb2.Empty()
