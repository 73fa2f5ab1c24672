"""The append-only audit log: who changed what, when, with which request.

Servicers and reconcilers `record` an entry in the transaction of the change it describes, so
an entry exists exactly when the change committed. A database trigger (migration 0001) refuses
UPDATE and DELETE on the table. `page` serves AuditService.ListAuditEvents.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.domain import filters
from linkplane.server.storage import filtering, models, records


async def record(session: AsyncSession, new_entry: models.AuditEntry) -> None:
    """Add an entry (see `entry`) to the session's transaction."""
    session.add(new_entry)


def entry(
    *,
    actor: str,
    action: str,
    resource: str,
    resource_uid: uuid.UUID | None,
    request_id: str = "",
    details: dict[str, Any] | None = None,
    project: str | None = None,
) -> models.AuditEntry:
    """A new entry. `project` defaults to the one `resource` names (`projects/{project}/…`);
    pass it for resources named outside a project."""
    return models.AuditEntry(
        actor=actor,
        action=action,
        resource=resource,
        resource_uid=resource_uid,
        request_id=request_id,
        details=details or {},
        project=project_of(resource) if project is None else project,
    )


def project_of(resource: str) -> str:
    """`payments` for `projects/payments/services/s` (and `projects/payments`); else ""."""
    parts = resource.split("/")
    return parts[1] if len(parts) >= 2 and parts[0] == "projects" else ""


async def for_resource(session: AsyncSession, resource: str) -> Sequence[models.AuditEntry]:
    query = select(models.AuditEntry).where(models.AuditEntry.resource == resource)
    return (await session.execute(query.order_by(models.AuditEntry.id))).scalars().all()


def filter_columns() -> dict[str, Any]:
    """The columns ListAuditEvents filters on, by filter field name."""
    entry = models.AuditEntry
    return {
        "resource": entry.resource,
        "actor": entry.actor,
        "method": entry.action,
        "request_id": entry.request_id,
        "time": entry.time,
    }


async def page(
    session: AsyncSession,
    *,
    project: str,
    node: filters.Node | None,
    after: int | None,
    limit: int,
) -> tuple[Sequence[models.AuditEntry], bool]:
    """One page of a project's entries, oldest first, and whether more follow (keyset by id).

    An entry belongs to the project its resource is in: `projects/{project}` itself (its IAM
    policy) or any name below it; the (project, id) index serves the query.
    """
    entry = models.AuditEntry
    query = filtering.narrowed(
        select(entry).where(entry.project == project), node, filter_columns()
    )
    return await records.keyset_page(session, query, entry.id, after, limit)
