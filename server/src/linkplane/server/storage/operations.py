"""Long-running operation rows: created by the API with each mutation, finished by workers.

Each row carries its target's project: who may see the project may see its operations.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import models, queues, records


def new_id() -> str:
    """Time-ordered id (milliseconds, then randomness), so listing by id lists newest first."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


async def create(
    session: AsyncSession,
    *,
    target: str,
    verb: str,
    resource_kind: str,
    resource_uid: uuid.UUID,
    target_generation: int,
    actor: str,
    progress_message: str,
    trace_context: str | None = None,
) -> models.Operation:
    return await records.insert(
        session,
        models.Operation(
            id=new_id(),
            target=target,
            project=project_of(target),
            verb=verb,
            resource_kind=resource_kind,
            resource_uid=resource_uid,
            target_generation=target_generation,
            actor=actor,
            done=False,
            progress_message=progress_message,
            cancel_requested=False,
            trace_context=trace_context,
        ),
    )


def project_of(target: str) -> str:
    """`projects/{project}/…` → project; targets are always project-scoped resource names."""
    parts = target.split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "projects" else ""


async def get(session: AsyncSession, operation_id: str) -> models.Operation | None:
    return await session.get(models.Operation, operation_id)


async def project_of_operation(session: AsyncSession, operation_id: str) -> str | None:
    """The project an operation belongs to, None when there is no such operation."""
    query = select(models.Operation.project).where(models.Operation.id == operation_id)
    project: str | None = (await session.execute(query)).scalar_one_or_none()
    return project


async def page(
    session: AsyncSession,
    *,
    done: bool | None,
    target: str | None,
    after: str | None,
    limit: int,
    projects: Collection[str] | None = None,
) -> tuple[Sequence[models.Operation], bool]:
    """Newest first; `after` is the id of the previous page's last operation.

    `projects` limits the page to those projects' operations (None: every project).
    """
    query = select(models.Operation)
    if projects is not None:
        query = query.where(models.Operation.project.in_(list(projects)))
    if done is not None:
        query = query.where(models.Operation.done == done)
    if target is not None:
        query = query.where(models.Operation.target == target)
    if after is not None:
        query = query.where(models.Operation.id < after)
    rows = (
        (await session.execute(query.order_by(models.Operation.id.desc()).limit(limit + 1)))
        .scalars()
        .all()
    )
    return rows[:limit], len(rows) > limit


async def open_for(session: AsyncSession, resource_uid: uuid.UUID) -> Sequence[models.Operation]:
    query = select(models.Operation).where(
        models.Operation.resource_uid == resource_uid, models.Operation.done.is_(False)
    )
    return (await session.execute(query.order_by(models.Operation.create_time))).scalars().all()


async def trace_contexts(session: AsyncSession, resource_uid: uuid.UUID) -> list[str]:
    """The traceparents of the resource's open operations, oldest first."""
    query = (
        select(models.Operation.trace_context)
        .where(
            models.Operation.resource_uid == resource_uid,
            models.Operation.done.is_(False),
            models.Operation.trace_context.is_not(None),
        )
        .order_by(models.Operation.create_time)
    )
    return [t for t in (await session.execute(query)).scalars().all() if t]


async def finish(
    session: AsyncSession,
    operation_id: str,
    *,
    response: bytes | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    finished = await session.execute(
        update(models.Operation)
        .where(models.Operation.id == operation_id, models.Operation.done.is_(False))
        .values(
            done=True,
            response=response,
            error=error,
            end_time=func.now(),
            update_time=func.now(),
        )
        .returning(
            models.Operation.verb,
            func.extract("epoch", func.now() - models.Operation.create_time),
        )
    )
    for verb, seconds in finished.all():
        queues.observe_operation(verb, float(seconds), failed=error is not None)


async def set_progress(session: AsyncSession, operation_id: str, message: str) -> None:
    await session.execute(
        update(models.Operation)
        .where(models.Operation.id == operation_id, models.Operation.progress_message != message)
        .values(progress_message=message, update_time=func.now())
    )


async def delete(session: AsyncSession, operation_id: str) -> bool:
    operation = await session.get(models.Operation, operation_id)
    if operation is None:
        return False
    await session.delete(operation)
    return True
