"""The append-only audit log: who changed what, when, with which request."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import models


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    resource: str,
    resource_uid: uuid.UUID | None,
    request_id: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        models.AuditEntry(
            actor=actor,
            action=action,
            resource=resource,
            resource_uid=resource_uid,
            request_id=request_id,
            details=details or {},
        )
    )


async def for_resource(session: AsyncSession, resource: str) -> Sequence[models.AuditEntry]:
    query = select(models.AuditEntry).where(models.AuditEntry.resource == resource)
    return (await session.execute(query.order_by(models.AuditEntry.id))).scalars().all()
