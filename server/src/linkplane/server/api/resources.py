"""Steps shared by the servicers' mutations: reference checks, operations and their records."""

from __future__ import annotations

import uuid
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from linkplane.server import telemetry
from linkplane.server.api import rpc
from linkplane.server.domain import errors, specs
from linkplane.server.protocol import converters
from linkplane.server.storage import audit, changes, driver, models, mutations, operations, records
from linkplane.server.storage.database import Session
from linkplane.v1 import common_pb2


async def check_account_ref(
    session: Session, account_name: str, region: str, path: str, region_path: str
) -> None:
    """The referenced Account exists and allows the region."""
    row = await records.get(session, models.Account, account_name)
    if row is None:
        raise errors.InvalidArgument(
            [errors.FieldViolation(path, f"account {account_name} is not registered")],
            reason="ACCOUNT_NOT_REGISTERED",
        )
    allowed = specs.account_from_json(row.spec).allowed_regions
    if allowed and region not in allowed:
        raise errors.InvalidArgument(
            [
                errors.FieldViolation(
                    region_path, f"account {account_name} allows only {', '.join(allowed)}"
                )
            ],
            reason="REGION_NOT_ALLOWED",
        )


async def start_operation(
    session: Session,
    *,
    target: str,
    verb: str,
    kind: str,
    uid: uuid.UUID,
    generation: int,
    actor: str,
    progress: str,
) -> operations_pb2.Operation:
    row = await operations.create(
        session,
        target=target,
        verb=verb,
        resource_kind=kind,
        resource_uid=uid,
        target_generation=generation,
        actor=actor,
        progress_message=progress,
        # The passes that work towards this operation continue this request's trace.
        trace_context=telemetry.current_traceparent(),
    )
    await changes.notify(session, kind=kind, name=target, uid=str(uid))
    return converters.operation(row)


async def record_mutation(
    session: driver.AnyConnection,
    *,
    method: str,
    request: Message,
    actor: str,
    resource: str,
    resource_uid: uuid.UUID,
    details: dict[str, Any] | None = None,
    operation_id: str | None = None,
    response: bytes | None = None,
    created: models.Base | None = None,
) -> None:
    """The two records every mutation leaves in its own transaction: the audit entry, and the
    outcome a retry with the same request_id gets back (`operation_id` or `response`). With
    `created`, the new row is inserted in the same statement (one round trip for all three)."""
    entry = audit.entry(
        actor=actor,
        action=method,
        resource=resource,
        resource_uid=resource_uid,
        request_id=getattr(request, "request_id", ""),
        details=details,
    )
    outcome = rpc.outcome(method, request, operation_id=operation_id, response=response)
    await mutations.write(session, entry=entry, outcome=outcome, created=created)


async def replayed_operation(
    session: Session, operation_id: str | None
) -> operations_pb2.Operation:
    if operation_id is None:
        raise errors.Unavailable("the first request with this request_id is still in progress")
    row = await operations.get(session, operation_id)
    if row is None:
        raise errors.NotFound(f"operations/{operation_id}", kind="operation")
    return converters.operation(row)


def preview(response: bytes, target: str, verb: str) -> operations_pb2.Operation:
    """What validate_only returns: a done Operation with no name, holding the would-be result."""
    metadata = any_pb2.Any()
    metadata.Pack(
        common_pb2.OperationMetadata(
            target=target,
            verb=verb,
            api_version="v1",
            progress_message="validated only; nothing changed",
        )
    )
    operation = operations_pb2.Operation(done=True, metadata=metadata)
    operation.response.ParseFromString(response)
    return operation
