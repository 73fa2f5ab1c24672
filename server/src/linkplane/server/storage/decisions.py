"""People's accept/reject decisions on a Service's endpoint connections.

AcceptServiceConnections and RejectServiceConnections record them; the Service's reconciler
applies the pending ones in AWS, in the order they were made, and marks them applied with
their outcome; the operation that asked for them finishes once all are applied.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func
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
