"""Status bookkeeping shared by the reconcilers: conditions, AWS errors, and operations.

An operation is done when its resource reaches the state it asked for, or fails with the
error that stopped it; this module is the one place that decides which, so the API's promise
("the Operation completes when the work is really done") is kept in one spot.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import empty_pb2

from linkplane.server.domain import errors
from linkplane.server.protocol import converters, statuses
from linkplane.server.storage import changes, decisions, inventory, models, operations, records
from linkplane.server.storage.database import Session
from linkplane.v1 import provider_service_pb2


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def set_condition(
    status: dict[str, Any],
    kind: str,
    holds: bool | None,
    reason: str,
    message: str,
    generation: int,
) -> None:
    """Set one condition; its transition time moves only when its truth value changes."""
    value = "UNKNOWN" if holds is None else ("TRUE" if holds else "FALSE")
    conditions: list[dict[str, Any]] = list(status.get("conditions", []))
    for condition in conditions:
        if condition["type"] == kind:
            if condition["status"] != value:
                condition["last_transition_time"] = now_iso()
            condition.update(
                status=value, reason=reason, message=message, observed_generation=generation
            )
            break
    else:
        conditions.append(
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message,
                "observed_generation": generation,
                "last_transition_time": now_iso(),
            }
        )
    status["conditions"] = conditions


def failure_status(reason: str, message: str, **metadata: str) -> dict[str, Any]:
    """A google.rpc.Status (as stored JSON) for a failed operation."""
    return converters.status_to_json(
        statuses.to_status(errors.FailedPrecondition(message, reason=reason, metadata=metadata))
    )


async def set_progress(session: Session, uid: Any, message: str) -> None:
    for operation in await operations.open_for(session, uid):
        await operations.set_progress(session, operation.id, message)


async def settle_service(session: Session, row: models.Service) -> None:
    """Finish the service's operations that its current state answers."""
    for operation in await operations.open_for(session, row.uid):
        if operation.verb in {"publish", "update"}:
            if row.observed_generation < operation.target_generation:
                continue
            if row.state == "ACTIVE":
                await operations.finish(
                    session, operation.id, response=converters.pack(converters.service(row))
                )
            elif row.state == "FAILED":
                error = (row.status or {}).get("last_aws_error") or {}
                await operations.finish(
                    session,
                    operation.id,
                    error=failure_status(
                        "AWS_ERROR",
                        f"{error.get('code', 'Error')}: "
                        f"{error.get('message', 'publishing failed')}",
                        code=str(error.get("code", "")),
                        action=str(error.get("action", "")),
                    ),
                )
        elif operation.verb in {"accept", "reject"}:
            recorded = await decisions.of_operation(session, operation.id)
            if any(d.applied_at is None for d in recorded):
                continue
            connections = {
                c.endpoint_id: c
                for c in await inventory.of_endpoints(
                    session, row.uid, [d.endpoint_id for d in recorded]
                )
            }
            failures = [
                provider_service_pb2.ConnectionDecisionFailure(
                    endpoint_id=d.endpoint_id,
                    code=str(d.outcome.get("code", "")),
                    message=str(d.outcome.get("message", "")),
                )
                for d in recorded
                if d.outcome.get("code")
            ]
            listed = [
                converters.service_connection(connections[d.endpoint_id], row.name)
                for d in recorded
                if d.endpoint_id in connections
            ]
            response_type = (
                provider_service_pb2.AcceptServiceConnectionsResponse
                if operation.verb == "accept"
                else provider_service_pb2.RejectServiceConnectionsResponse
            )
            await operations.finish(
                session,
                operation.id,
                response=converters.pack(
                    response_type(service_connections=listed, failures=failures)
                ),
            )


CONNECTION_SETTLED = {"AVAILABLE", "PENDING_ACCEPTANCE"}
CONNECTION_FAILED = {"REJECTED", "FAILED", "EXPIRED"}


async def settle_connection(session: Session, row: models.Connection) -> None:
    """Create/update operations finish when linkplane has nothing left to do on its own:
    the endpoint is AVAILABLE, or it waits for the provider (PENDING_ACCEPTANCE, not ready,
    as the returned Connection's state says). REJECTED, FAILED and EXPIRED fail them."""
    for operation in await operations.open_for(session, row.uid):
        if operation.verb not in {"create", "update"}:
            continue
        if row.observed_generation < operation.target_generation:
            continue
        stalled = _stalled_condition(row.status or {})
        if stalled is not None:
            # AWS accepted a change but does not reflect it (reconciler/stalls.py): the
            # reconciler keeps retrying with backoff, but the caller learns now, not in hours.
            await operations.finish(
                session,
                operation.id,
                error=failure_status("STALLED", stalled, state=row.state),
            )
        elif row.state in CONNECTION_SETTLED:
            await operations.finish(
                session, operation.id, response=converters.pack(converters.connection(row))
            )
        elif row.state in CONNECTION_FAILED:
            error = (row.status or {}).get("last_aws_error") or {}
            message = {
                "REJECTED": "the provider rejected the connection request",
                "EXPIRED": "the connection request expired before the provider decided",
            }.get(row.state, f"{error.get('code', 'Error')}: {error.get('message', 'failed')}")
            await operations.finish(
                session,
                operation.id,
                error=failure_status(f"CONNECTION_{row.state}", message, state=row.state),
            )


def _stalled_condition(status: dict[str, Any]) -> str | None:
    """The message of a true ``Stalled`` condition, None when there is none."""
    for condition in status.get("conditions", []):
        if condition.get("type") == "Stalled" and condition.get("status") == "TRUE":
            return str(condition.get("message", "a change is not reflected by AWS"))
    return None


async def finish_deletion(session: Session, row: Any, kind: str) -> None:
    """The resource is gone from AWS: finish every open operation and delete the row."""
    for operation in await operations.open_for(session, row.uid):
        if operation.verb == "delete":
            await operations.finish(
                session, operation.id, response=converters.pack(empty_pb2.Empty())
            )
        else:
            await operations.finish(
                session,
                operation.id,
                error=failure_status(
                    "RESOURCE_DELETED", f"{row.name} was deleted before this finished"
                ),
            )
    await changes.notify(session, kind=kind, name=row.name, uid=str(row.uid))
    await records.remove(session, row)
