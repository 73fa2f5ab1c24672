"""Queries shared by every resource table: fetch by name, page through a project, bump versions.

Kept generic over the ORM class so pagination and filtering behave the same for services,
connections and accounts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, inspect, select
from sqlalchemy import insert as sql_insert
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.domain import filters
from linkplane.server.storage import filtering, models

Row = TypeVar("Row", models.Account, models.Service, models.Connection)
M = TypeVar("M", bound=models.Base)
T = TypeVar("T")


async def get(
    session: AsyncSession, model: type[Row], name: str, *, for_update: bool = False
) -> Row | None:
    query = select(model).where(model.name == name)
    if for_update:
        query = query.with_for_update()
    result = await session.execute(query)
    return result.scalar_one_or_none()


async def insert(session: AsyncSession, row: M) -> M:
    """Insert a new (never added) object and return the stored one, with its server defaults
    (times), in one round trip: INSERT … RETURNING, where `add` + `flush` + `refresh` takes
    two. Only the attributes set on `row` are written; the returned object is in the session
    like an added one."""
    model = type(row)
    values = {
        attribute.key: row.__dict__[attribute.key]
        for attribute in inspect(model).column_attrs
        if attribute.key in row.__dict__
    }
    result = await session.scalars(sql_insert(model).returning(model), [values])
    return result.one()


async def page(
    session: AsyncSession,
    model: type[Row],
    *,
    project: str,
    node: filters.Node | None,
    columns: Mapping[str, Any],
    after: str | None,
    limit: int,
) -> tuple[Sequence[Row], bool]:
    """One page ordered by name, and whether more rows follow (keyset pagination)."""
    query = filtering.narrowed(select(model).where(model.project == project), node, columns)
    return await keyset_page(session, query, model.name, after, limit)


async def keyset_page(
    session: AsyncSession, query: Select[T], key: Any, after: Any, limit: int
) -> tuple[Sequence[T], bool]:
    """Up to `limit` of `query`'s rows, ascending by `key` from just after `after` (None: from
    the start), and whether more rows follow: one row beyond the page is read to know, so the
    last page needs no extra round trip."""
    if after is not None:
        query = query.where(key > after)
    rows = (await session.execute(query.order_by(key).limit(limit + 1))).scalars().all()
    return rows[:limit], len(rows) > limit


async def count_where(session: AsyncSession, model: type[Row], *conditions: Any) -> int:
    result = await session.execute(select(func.count()).select_from(model).where(*conditions))
    return int(result.scalar_one())


async def get_in_project(
    session: AsyncSession, model: type[Row], project: str, name: str
) -> Row | None:
    """The row of that name, if it is in `project` (a watch re-reads only its own project)."""
    query = select(model).where(model.project == project, model.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def named(session: AsyncSession, model: type[Row], names: Collection[str]) -> Sequence[Row]:
    """The rows of these names that exist, in one query (unordered, like any IN lookup)."""
    query = select(model).where(model.name.in_(sorted(names)))
    return (await session.execute(query)).scalars().all()


async def find(session: AsyncSession, model: type[M], key: Any) -> M | None:
    """The row with this primary key, from the session's identity map when it holds it."""
    return await session.get(model, key)


def mark_updated(row: Any) -> None:
    """The row changed: its update_time becomes the writing transaction's now() at flush."""
    row.update_time = func.now()


def mark_deleted(row: Any) -> None:
    """Deletion was asked for: delete_time becomes the writing transaction's now() at flush."""
    row.delete_time = func.now()


async def flush(session: AsyncSession) -> None:
    """Send the pending changes now, so the transaction's later statements see them."""
    await session.flush()


async def write_back(session: AsyncSession, row: Any) -> None:
    """Send the pending changes and read `row` back, with the values Postgres computed
    (update_time), so a response or a status derived from it shows what was stored."""
    await session.flush()
    await session.refresh(row)


async def remove(session: AsyncSession, row: Any) -> None:
    """Delete the row (at the next flush, or the commit)."""
    await session.delete(row)


def detached_copy(model: type[M], row: M) -> M:
    """A new, never-added object with `row`'s column values: to show what a change would
    leave without writing anything."""
    return model(**{column.key: getattr(row, column.key) for column in inspect(model).column_attrs})
