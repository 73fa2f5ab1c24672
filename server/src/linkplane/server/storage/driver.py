"""The hottest statements, run on asyncpg directly: RegisterAccount's call and the rate-limit
buckets' over the SQLAlchemy pool's connections, the coalesced Gets' on a connection of their
own.

Per statement, SQLAlchemy's execution layer (execution context, result proxy, the greenlet hop
of its asyncpg adapter, the pool's reset) costs more CPU than asyncpg's own work: a cached
one-row SELECT took 0.27 ms through an AsyncConnection and 0.11 ms through asyncpg on this
machine, and RegisterAccount's five statements (before it was one call) 2.0 ms against 1.0 ms.
The API's Get and RegisterAccount, which run on every call, are built as Core statements like
every other query (so the SQL is SQLAlchemy's, with its casts and type processing), compiled
once, and sent through asyncpg (which prepares each once per connection).

Everything else the storage layer does stays on SQLAlchemy: these are a handful of fixed
statements, not a second data layer. RegisterAccount's call takes its connection from, and
returns it to, the one pool (its size and timeouts hold), and one that turns out broken is
invalidated there. The Gets, sent one statement at a time per kind (storage/coalescing.py),
skip the pool's checkout and checkin, which cost more than the statement (`Dedicated`); a
read that meets its connection dropped runs once more on a new one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from linkplane.server import telemetry
from linkplane.server.domain import errors
from linkplane.server.storage import database

T = TypeVar("T")
_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
_MISSING = object()


@dataclass(frozen=True)
class Statement:
    """A Core statement compiled for asyncpg: its SQL and, in `$n` order, each parameter's
    name, the value it has when the caller gives none (a literal), and the type processing
    SQLAlchemy would apply (JSON documents to text, for one)."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def of(cls, statement: ClauseElement) -> Statement:
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        return cls(
            sql=str(compiled),
            names=names,
            defaults=tuple(
                _MISSING if bind.required or bind.callable is not None else bind.value
                for bind in binds
            ),
            processors=tuple(
                bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT) for bind in binds
            ),
        )

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, default, process in zip(self.names, self.defaults, self.processors, strict=True):
            value = values.get(name, default)
            if value is _MISSING:
                raise KeyError(f"no value for parameter {name!r} of {self.sql!r}")
            out.append(process(value) if process is not None else value)
        return out


class Connection:
    """One pooled connection, as these statements use it."""

    def __init__(self, driver: asyncpg.Connection) -> None:
        self.driver = driver

    async def row(self, statement: Statement, values: Mapping[str, Any]) -> asyncpg.Record | None:
        """The first row of the statement's result, if any."""
        with telemetry.statement_span(statement.sql):
            row: asyncpg.Record | None = await self.driver.fetchrow(
                statement.sql, *statement.arguments(values)
            )
        return row

    async def rows(self, statement: Statement, values: Mapping[str, Any]) -> list[asyncpg.Record]:
        """Every row of the statement's result."""
        with telemetry.statement_span(statement.sql):
            rows: list[asyncpg.Record] = await self.driver.fetch(
                statement.sql, *statement.arguments(values)
            )
        return rows


AnyConnection = database.Executor | Connection
"""What a storage function whose statements are built once runs them on: an ORM session's or
a Core connection's transaction, or a connection of this module."""

_COMPILED: dict[ClauseElement, Statement] = {}


async def row(
    executor: AnyConnection, statement: ClauseElement, values: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The first row of a statement built once (a module constant), by column name: through
    asyncpg on a `Connection` of this module, through SQLAlchemy on a session or connection
    (the same statement serves a path of either kind)."""
    if isinstance(executor, Connection):
        compiled = _COMPILED.get(statement)
        if compiled is None:
            compiled = _COMPILED[statement] = Statement.of(statement)
        return await executor.row(compiled, values)
    result = (await executor.execute(statement, values)).first()  # type: ignore[call-overload]
    return None if result is None else result._mapping


@contextlib.asynccontextmanager
async def transaction(db: database.Database) -> AsyncIterator[Connection]:
    """A transaction (READ COMMITTED), committed when the block ends without an error. Not
    retried: a connection that breaks mid-transaction is UNAVAILABLE to the caller, whose
    request id makes its retry safe."""
    with database.translate_errors():
        try:
            async with _connection(db) as connection, connection.driver.transaction():
                yield connection
        except _Stale as stale:
            raise stale.cause from None


@contextlib.asynccontextmanager
async def autocommit(db: database.Database) -> AsyncIterator[Connection]:
    """A pooled connection outside any transaction: each statement commits by itself (the
    rate-limit buckets' one-statement reservations, RegisterAccount's call). Not retried: a
    statement on a connection that broke may have committed."""
    with database.translate_errors():
        try:
            async with _connection(db) as connection:
                yield connection
        except _Stale as stale:
            raise stale.cause from None


class Dedicated:
    """One connection of its own, outside the pool, for statements sent one at a time (the
    coalesced Gets of one kind, storage/coalescing.py; a worker's lease heartbeats,
    storage/leases.py). A pooled read costs its checkout and checkin: 329 us of CPU per read
    on the 2-core machine, against 126 us for the same statement on a connection already in
    hand. Opened when first needed; one that Postgres
    dropped is replaced and the statement (idempotent) runs again, once, on the new one."""

    def __init__(self, db: database.Database) -> None:
        self.db = db
        self._driver: asyncpg.Connection | None = None

    async def read(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        with database.translate_errors():
            try:
                return await self._run(work)
            except _Stale:
                pass
            try:
                return await self._run(work)
            except _Stale as stale:
                raise stale.cause from None

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        held = self._driver
        if held is None or held.is_closed():
            held = self._driver = await self.db.connect()
        try:
            return await work(Connection(held))
        except errors.DomainError:
            raise
        except BaseException as error:
            if isinstance(error, asyncpg.PostgresError) and not _dropped(error):
                raise  # the statement's own error: the connection is fine
            # Dropped by Postgres, or interrupted mid-protocol (cancelled, a bug): never used
            # again.
            self._driver = None
            held.terminate()
            if _dropped(error):
                raise _Stale(error) from error
            raise


class _Stale(Exception):
    """A pooled connection was broken (and is discarded now); `cause` says how."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@contextlib.asynccontextmanager
async def _connection(db: database.Database) -> AsyncIterator[Connection]:
    async with db.engine.connect() as pooled:
        fairy = await pooled.get_raw_connection()
        try:
            yield Connection(fairy.driver_connection)
        except errors.DomainError:
            raise  # the caller's own refusal: the connection is fine
        except BaseException as error:
            if _dropped(error):
                # Postgres dropped it (restart, failover, idle timeout: 08…, 57P01…, a closed
                # socket, or its FATAL met by asyncpg mid-protocol).
                await pooled.invalidate(error)
                await db.discard_idle_connections()
                raise _Stale(error) from error
            if not isinstance(error, asyncpg.PostgresError):
                # Interrupted in the middle of the protocol (a cancelled call leaves asyncpg
                # "another operation is in progress"), or a bug: never hand it out again.
                await pooled.invalidate(error)
            # A statement's own error leaves the connection fine (its transaction, if any,
            # was rolled back).
            raise


def _dropped(error: BaseException) -> bool:
    """Whether the error says Postgres dropped the connection (so another one may work at
    once): not a timeout or a cancelled statement, which a retry would only repeat."""
    if isinstance(error, TimeoutError):
        return False
    if isinstance(
        error,
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.InternalClientError
        | OSError,
    ):
        return True
    code = database.sqlstate(error)
    return code is not None and (code.startswith("08") or code in DROPPED_SQLSTATES)


# Administrator or crash shutdown, cannot connect now: the server ended this session.
DROPPED_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
