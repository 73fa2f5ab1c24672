"""The API's hot read paths (Get and List of services and connections): one round trip each.

`records.get`/`records.page` load ORM objects in a transaction: BEGIN, SELECT, COMMIT and the
ORM's identity map for every row. A read needs none of that: these queries run in autocommit
(no BEGIN/COMMIT), as Core statements built once per shape (SQLAlchemy then reuses their
compiled form, and asyncpg its prepared statement), and select only the columns a message is
made of, with the JSONB documents as text: protocol/cached.py decodes them only when the
message is not already cached. Gets that arrive together share one statement, sent on a
connection of its own (storage/coalescing.py, storage/driver.py's `Dedicated`); a List page
runs on a pooled connection. Either way a connection that broke while idle (Postgres
restarted) fails the first statement and the read is retried once on a fresh one, so callers
see UNAVAILABLE only while Postgres really is unreachable.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy.exc
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Row,
    Select,
    Text,
    any_,
    bindparam,
    cast,
    literal_column,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from linkplane.server.domain import filters
from linkplane.server.storage import coalescing, database, driver, filtering, models

T = TypeVar("T")
Model = type[models.Service] | type[models.Connection]

# What a Service or Connection message is made of (protocol/converters.py), after `uid`,
# `revision` and `version`; `spec` and `status` arrive as JSON text.
MESSAGE_COLUMNS = (
    "name",
    "state",
    "reconciling",
    "generation",
    "observed_generation",
    "spec",
    "status",
    "create_time",
    "update_time",
    "delete_time",
)
JSON_COLUMNS = frozenset({"spec", "status"})


def _columns(model: Model) -> list[Any]:
    """`uid`, `revision`, `version` (the row version's xmin: every UPDATE changes it, also one
    that leaves the revision alone), then the message columns."""
    table = model.__table__
    version = cast(cast(literal_column("xmin"), Text), BigInteger).label("version")
    return [
        table.c.uid,
        table.c.revision,
        version,
        *(
            cast(table.c[name], Text).label(name) if name in JSON_COLUMNS else table.c[name]
            for name in MESSAGE_COLUMNS
        ),
    ]


def _by_names(model: Model) -> Select[Any]:
    names = bindparam("names", type_=ARRAY(Text))
    return select(*_columns(model)).where(model.__table__.c.name == any_(names))


def _page(model: Model, *, after: bool) -> Select[Any]:
    table = model.__table__
    query = select(*_columns(model)).where(table.c.project == bindparam("project"))
    if after:
        query = query.where(table.c.name > bindparam("after"))
    return query.order_by(table.c.name).limit(bindparam("limit"))


# Built once: the statement objects (and so SQLAlchemy's compiled-SQL cache entries) are reused.
_FIRST_PAGE = {model: _page(model, after=False) for model in (models.Service, models.Connection)}
_NEXT_PAGE = {model: _page(model, after=True) for model in (models.Service, models.Connection)}


@contextlib.asynccontextmanager
async def _autocommit(db: database.Database) -> AsyncIterator[AsyncConnection]:
    async with db.engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


async def run(db: database.Database, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run one read outside a transaction; once more on a fresh connection if the pooled one
    turned out to be broken (reads are idempotent)."""
    with database.translate_errors():
        try:
            async with _autocommit(db) as connection:
                return await read(connection)
        except sqlalchemy.exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        async with _autocommit(db) as connection:
            return await read(connection)


# The Gets of every call: sent through asyncpg directly (storage/driver.py), those that arrive
# together in one statement (storage/coalescing.py).
_GET = {
    model: driver.Statement.of(_by_names(model)) for model in (models.Service, models.Connection)
}
_GETS: weakref.WeakKeyDictionary[
    database.Database, dict[Model, coalescing.Coalescer[str, Mapping[str, Any]]]
] = weakref.WeakKeyDictionary()


async def get(db: database.Database, model: Model, name: str) -> Mapping[str, Any] | None:
    """The message columns of the resource named `name` (by position, as a page's rows, and
    by name), or None."""
    return await gets(db, model).get(name)


def gets(db: database.Database, model: Model) -> coalescing.Coalescer[str, Mapping[str, Any]]:
    """The process's Gets of one kind on `db`."""
    kinds = _GETS.setdefault(db, {})
    coalescer = kinds.get(model)
    if coalescer is None:
        statement = _GET[model]
        # One statement at a time: on a connection of its own.
        connection = driver.Dedicated(db)

        async def fetch(names: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
            async def read(held: driver.Connection) -> list[asyncpg.Record]:
                return await held.rows(statement, {"names": names})

            return {row["name"]: row for row in await connection.read(read)}

        coalescer = kinds[model] = coalescing.Coalescer(fetch)
    return coalescer


async def page(
    db: database.Database,
    model: Model,
    *,
    project: str,
    node: filters.Node | None,
    columns: Mapping[str, Any],
    after: str | None,
    limit: int,
) -> tuple[Sequence[Row[Any]], bool]:
    """One page ordered by name, and whether more rows follow (keyset pagination, as
    records.page)."""
    values: dict[str, Any] = {"project": project, "limit": limit + 1}
    query = filtering.narrowed(
        _NEXT_PAGE[model] if after is not None else _FIRST_PAGE[model], node, columns
    )
    if after is not None:
        values["after"] = after

    async def read(connection: AsyncConnection) -> Sequence[Row[Any]]:
        rows: Sequence[Row[Any]] = (await connection.execute(query, values)).all()
        return rows

    rows = await run(db, read)
    return rows[:limit], len(rows) > limit
