"""People's accept/reject decisions on a Service's endpoint connections.

AcceptServiceConnections and RejectServiceConnections record them; the Service's reconciler
applies the pending ones in AWS, in the order they were made, and marks them applied with
their outcome; the operation that asked for them finishes once all are applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import models

Row = models.ConnectionDecision


def record(
    session: AsyncSession,
    *,
    service_uid: uuid.UUID,
    endpoint_id: str,
    verdict: str,
    actor: str,
    reason: str,
    operation_id: str,
    outcome: dict[str, Any],
    refused: bool,
) -> None:
    """Add a decision to the transaction. A refused one (its failure in `outcome`) is stored
    as already applied, so the reconciler leaves it be and its operation reports it."""
    session.add(
        Row(
            service_uid=service_uid,
            endpoint_id=endpoint_id,
            verdict=verdict,
            actor=actor,
            reason=reason,
            operation_id=operation_id,
            outcome=outcome,
            applied_at=func.now() if refused else None,
        )
    )


def waiting() -> Any:
    """The condition, on a Service row, that a decision of it waits to be applied: those
    recorded while a worker held the lease make the next look immediate."""
    return exists().where(
        and_(
            Row.service_uid == models.Service.uid,
            Row.applied_at.is_(None),
        )
    )


async def pending(session: AsyncSession, service_uid: uuid.UUID) -> Sequence[Row]:
    """The Service's decisions not applied yet, oldest first."""
    return (
        (
            await session.execute(
                select(Row)
                .where(
                    Row.service_uid == service_uid,
                    Row.applied_at.is_(None),
                )
                .order_by(Row.id)
            )
        )
        .scalars()
        .all()
    )


async def of_operation(session: AsyncSession, operation_id: str) -> Sequence[Row]:
    """The decisions one Accept/Reject request recorded."""
    return (
        (await session.execute(select(Row).where(Row.operation_id == operation_id))).scalars().all()
    )


async def mark_applied(session: AsyncSession, decision_id: int, outcome: dict[str, Any]) -> None:
    """The decision was sent to AWS (or refused): stamp it applied now, with its outcome
    (empty when AWS took it). A decision deleted meanwhile (with its Service) is skipped."""
    row = await session.get(Row, decision_id)
    if row is not None:
        row.applied_at = func.now()
        row.outcome = outcome
