"""What the garbage collector reads: every registered Account and the account and Region of
every Service and Connection (where to look), which of the uids it found tagged in AWS still
have a row (whose objects are not garbage), and the session-level advisory lock that lets one
replica sweep at a time."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from typing import NamedTuple

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import database, models


class LiveService(NamedTuple):
    uid: uuid.UUID
    provider_account: str
    region: str


class LiveConnection(NamedTuple):
    uid: uuid.UUID
    consumer_account: str
    region: str
    endpoint_id: str | None


@contextlib.asynccontextmanager
async def exclusive(db: database.Database, key: int) -> AsyncIterator[bool]:
    """Whether this replica holds the advisory lock `key` (taken without waiting), for the
    block's duration: held by a connection of its own, outside any transaction, and released
    on the way out."""
    async with db.engine.connect() as connection:
        locked = (
            await connection.execute(text(f"SELECT pg_try_advisory_lock({key})"))
        ).scalar_one()
        if not locked:
            yield False
            return
        try:
            yield True
        finally:
            await connection.execute(text(f"SELECT pg_advisory_unlock({key})"))


async def accounts(session: AsyncSession) -> Sequence[models.Account]:
    return (await session.execute(select(models.Account))).scalars().all()


async def services(session: AsyncSession) -> list[LiveService]:
    rows = await session.execute(
        select(models.Service.uid, models.Service.provider_account, models.Service.region)
    )
    return [LiveService(*row) for row in rows.all()]


async def connections(session: AsyncSession) -> list[LiveConnection]:
    rows = await session.execute(
        select(
            models.Connection.uid,
            models.Connection.consumer_account,
            models.Connection.region,
            models.Connection.endpoint_id,
        )
    )
    return [LiveConnection(*row) for row in rows.all()]


async def tracked_endpoints(
    session: AsyncSession, uids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """Of these Connection uids, those that have a row, each with the endpoint it tracks."""
    if not uids:
        return {}
    rows = await session.execute(
        select(models.Connection.uid, models.Connection.endpoint_id).where(
            models.Connection.uid.in_(uids)
        )
    )
    return {uid: endpoint_id for uid, endpoint_id in rows.all()}


async def existing_services(session: AsyncSession, uids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Of these Service uids, those that have a row."""
    if not uids:
        return set()
    rows = await session.execute(select(models.Service.uid).where(models.Service.uid.in_(uids)))
    return set(rows.scalars().all())
