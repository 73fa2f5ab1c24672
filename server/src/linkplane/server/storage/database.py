"""The Postgres engine, sessions, and the classification of database failures.

One `Database` per process. Sessions are short: one per RPC or reconcile step. When Postgres is
unreachable (or starting up, shutting down, out of connections) every query raises the domain's
`Unavailable` (gRPC UNAVAILABLE), and the process recovers by itself once the database is
back. There is no ping per checkout (a round trip on every request): the first statement on a
connection that broke while pooled fails as a disconnect, and SQLAlchemy then discards it and
every older pooled connection (storage/reads.py retries its reads once on a fresh one).
Failures are classified by SQLSTATE and exception type (`classify`), never by words in the
message, which names tables such as `connections`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import asyncpg
import sqlalchemy.exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from linkplane.server import telemetry
from linkplane.server.domain import errors
from linkplane.server.storage import changes

Session: TypeAlias = AsyncSession
"""One transaction's session, as the API and the reconcilers name it: they hand it to the
storage functions and never query through it themselves."""

Executor: TypeAlias = AsyncSession | AsyncConnection
"""What a storage function that runs only Core statements takes: an ORM session's
transaction, or a bare connection's (`Database.statements`)."""


def async_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as psql and pgserver print them) and use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """The engine and session factory of one process."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_overflow: int | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.url = async_url(url)
        connect_args: dict[str, Any] = {
            "timeout": timeout,
            "command_timeout": max(timeout * 6, 30.0),
            "server_settings": {"application_name": "linkplane"},
        }
        self._dsn = changes.asyncpg_dsn(self.url)
        self._connect_args = connect_args
        self._own_connections: set[asyncpg.Connection] = set()
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            # Connections the pool may hold at once: pool_size, and pool_overflow more (as many
            # again by default) in a burst (and, outside it, one per kind for the Gets and one
            # for the lease heartbeats: storage/driver.py's `Dedicated`).
            pool_size=pool_size,
            max_overflow=pool_size if pool_overflow is None else pool_overflow,
            pool_pre_ping=False,
            pool_timeout=timeout,
            connect_args=connect_args,
            # Statement parameters hold secrets (external ids) and user data: errors and logs
            # show the SQL only.
            hide_parameters=True,
        )
        telemetry.instrument_engine(self.engine)  # a span per statement when tracing is on
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any error."""
        with translate_errors():
            async with self.sessions() as session, session.begin():
                yield session

    @contextlib.asynccontextmanager
    async def statements(self) -> AsyncIterator[AsyncConnection]:
        """One transaction of Core statements only, without the ORM's unit of work (whose
        session and flush at commit cost a hot write path more than its statements do)."""
        with translate_errors():
            async with self.engine.begin() as connection:
                yield connection

    async def discard_idle_connections(self) -> None:
        """After Postgres dropped a pooled connection (a restart drops every one): replace the
        pool, closing its idle connections, so callers get new ones instead of meeting each
        dead one in turn, as SQLAlchemy does on a disconnect it detects itself. Connections
        checked out now are discarded when they come back."""
        await self.engine.dispose()

    async def ping(self) -> bool:
        # Twice: without pre-ping, the first try after an outage may meet a pooled connection
        # that broke meanwhile (its failure discards the pool's old connections).
        for _ in range(2):
            try:
                async with self.engine.connect() as connection:
                    await connection.exec_driver_sql("SELECT 1")
            except Exception:  # noqa: S112 - any failure means "not reachable now"
                continue
            return True
        return False

    async def connect(self) -> asyncpg.Connection:
        """A connection of the caller's own, outside the pool, with the pool's timeouts and
        name (storage/driver.py's `Dedicated`); closed by the caller, or with the Database."""
        connection = await asyncpg.connect(self._dsn, **self._connect_args)
        self._own_connections.add(connection)
        connection.add_termination_listener(self._own_connections.discard)
        return connection

    async def close(self) -> None:
        for connection in list(self._own_connections):
            connection.terminate()
        await self.engine.dispose()


# SQLSTATEs that mean "Postgres cannot serve this now; the same request may succeed later":
# connection exceptions (class 08), insufficient resources (53: too many connections, out of
# memory or disk), operator intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03
# cannot connect now — starting up or shutting down, 57P04 database dropped, 57P05 idle
# session timeout), statement timeout (57014) and system errors (58).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "58")
UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "57P04", "57P05", "57014"}
# Concurrency conflicts: a retry of the whole request is expected to succeed.
ABORTED_SQLSTATES = {
    "40001": "a concurrent transaction conflicted with this one; retry the request",
    "40P01": "a concurrent transaction deadlocked with this one; retry the request",
    "55P03": "a row this request needs is locked by another transaction; retry the request",
    "23505": "a concurrent request wrote the same record; retry the request",
    "23503": "a record this request refers to was changed concurrently; retry the request",
}


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, wherever SQLAlchemy or asyncpg put it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return None


def classify(exc: BaseException) -> errors.DomainError | None:
    """The domain error a database failure means, or None when it is a bug (→ INTERNAL).

    By SQLSTATE and exception type only: message text names tables and columns (a data error
    on `connections` mentions "connection"), so it must not decide.
    """
    code = sqlstate(exc)
    if code is not None:
        if code[:2] in UNAVAILABLE_SQLSTATE_CLASSES or code in UNAVAILABLE_SQLSTATES:
            return _unavailable(exc, code)
        if code in ABORTED_SQLSTATES:
            return errors.Aborted(
                ABORTED_SQLSTATES[code], reason="CONCURRENT_CHANGE", metadata={"sqlstate": code}
            )
        return None
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return _unavailable(exc, None)
    # Pool checkout timeouts, a closed or broken driver connection, and the socket layer.
    if isinstance(
        exc,
        sqlalchemy.exc.TimeoutError
        | sqlalchemy.exc.InterfaceError
        | asyncpg.InterfaceError
        # asyncpg's protocol met a message it did not expect in its state: the server's FATAL
        # (57P01 at shutdown) arriving on an idle connection leaves it so.
        | asyncpg.exceptions.InternalClientError
        | sqlalchemy.exc.DisconnectionError
        | ConnectionError
        | socket.gaierror
        | TimeoutError
        | OSError,
    ):
        return _unavailable(exc, None)
    return None


def is_connection_failure(exc: BaseException) -> bool:
    """True for failures that mean "Postgres is not reachable now", not "the query is wrong"."""
    return isinstance(classify(exc), errors.Unavailable)


def _unavailable(exc: BaseException, code: str | None) -> errors.Unavailable:
    metadata = {"cause": type(exc).__name__}
    if code is not None:
        metadata["sqlstate"] = code
    return errors.Unavailable(
        "the database is unreachable; retry later",
        reason="DATABASE_UNAVAILABLE",
        metadata=metadata,
    )


@contextlib.contextmanager
def translate_errors() -> Any:
    """Turn database failures into the domain errors they mean; let bugs through."""
    try:
        yield
    except errors.DomainError:
        raise
    except Exception as exc:
        classified = classify(exc)
        if classified is not None:
            raise classified from exc
        raise
