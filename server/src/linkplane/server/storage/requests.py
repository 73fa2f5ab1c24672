"""Request-id records (AIP-155): a retried mutation replays its first result.

`claim` runs first in the mutation's transaction. Postgres makes a concurrent duplicate wait on
the first one's uncommitted row, so two racing retries still produce a single resource. Ids are
scoped per principal: a caller can only ever replay its own requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import models


@dataclass(frozen=True)
class Replay:
    """The first result of a request: an operation id, or a serialized response."""

    digest: str
    operation_id: str | None
    response: bytes | None


async def claim(
    session: AsyncSession, *, method: str, request_id: str, digest: str, principal: str = ""
) -> Replay | None:
    """Reserve the id for this request; return the earlier result when it was used before."""
    inserted = await session.execute(
        insert(models.RequestRecord)
        .values(method=method, principal=principal, request_id=request_id, request_digest=digest)
        .on_conflict_do_nothing()
        .returning(models.RequestRecord.request_id)
    )
    if inserted.scalar_one_or_none() is not None:
        return None
    record = (
        await session.execute(
            select(models.RequestRecord).where(
                models.RequestRecord.method == method,
                models.RequestRecord.principal == principal,
                models.RequestRecord.request_id == request_id,
            )
        )
    ).scalar_one()
    return Replay(record.request_digest, record.operation_id, record.response)


async def complete(
    session: AsyncSession,
    *,
    method: str,
    request_id: str,
    principal: str = "",
    operation_id: str | None = None,
    response: bytes | None = None,
) -> None:
    await session.execute(
        update(models.RequestRecord)
        .where(
            models.RequestRecord.method == method,
            models.RequestRecord.principal == principal,
            models.RequestRecord.request_id == request_id,
        )
        .values(operation_id=operation_id, response=response)
    )


async def expire(session: AsyncSession, *, older_than: timedelta) -> int:
    """Forget request ids older than `older_than`: a retry that late is a new request."""
    result = await session.execute(
        delete(models.RequestRecord).where(
            models.RequestRecord.create_time < func.now() - older_than
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
