"""Request-id records (AIP-155): a retried mutation replays its first result.

`claim` runs first in the mutation's transaction. Postgres makes a concurrent duplicate wait on
the first one's uncommitted row, so two racing retries still produce a single resource. Ids are
scoped per principal: a caller can only ever replay its own requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import driver, models


@dataclass(frozen=True)
class Replay:
    """The first result of a request: an operation id, or a serialized response."""

    digest: str
    operation_id: str | None
    response: bytes | None
    # When the request was first made (its record's create time, that of its transaction).
    time: datetime


_RECORDS = models.table_of(models.RequestRecord)
_THIS_RECORD = (
    _RECORDS.c.method == bindparam("method"),
    _RECORDS.c.principal == bindparam("principal"),
    _RECORDS.c.request_id == bindparam("request_id"),
)
# Built once: SQLAlchemy reuses their compiled SQL, asyncpg its prepared statements.
_CLAIM = (
    insert(_RECORDS)
    .values(
        method=bindparam("method"),
        principal=bindparam("principal"),
        request_id=bindparam("request_id"),
        request_digest=bindparam("digest"),
    )
    .on_conflict_do_nothing()
    .returning(_RECORDS.c.request_id)
)
_EARLIER = select(
    _RECORDS.c.request_digest, _RECORDS.c.operation_id, _RECORDS.c.response, _RECORDS.c.create_time
).where(*_THIS_RECORD)


async def claim(
    executor: driver.AnyConnection,
    *,
    method: str,
    request_id: str,
    digest: str,
    principal: str = "",
) -> Replay | None:
    """Reserve the id for this request; return the earlier result when it was used before."""
    key = {"method": method, "principal": principal, "request_id": request_id}
    if await driver.row(executor, _CLAIM, {**key, "digest": digest}) is not None:
        return None
    earlier = await driver.row(executor, _EARLIER, key)
    assert earlier is not None  # the conflicting record: claims are never deleted in-flight
    return Replay(
        earlier["request_digest"],
        earlier["operation_id"],
        earlier["response"],
        earlier["create_time"],
    )


async def expire(session: AsyncSession, *, older_than: timedelta) -> int:
    """Forget request ids older than `older_than`: a retry that late is a new request."""
    result = await session.execute(
        delete(models.RequestRecord).where(
            models.RequestRecord.create_time < func.now() - older_than
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
