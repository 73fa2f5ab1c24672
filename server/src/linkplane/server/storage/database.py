"""The Postgres engine, sessions, and the translation of connection failures.

One `Database` per process. Sessions are short: one per RPC or reconcile step. When Postgres is
unreachable every query raises the domain's `Unavailable` (gRPC UNAVAILABLE), and because the
pool pre-pings connections, the process recovers by itself once the database is back.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy.exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from linkplane.server.domain import errors


def async_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as psql and pgserver print them) and use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """The engine and session factory of one process."""

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 5.0) -> None:
        self.url = async_url(url)
        connect_args: dict[str, Any] = {
            "timeout": timeout,
            "command_timeout": max(timeout * 6, 30.0),
            "server_settings": {"application_name": "linkplane"},
        }
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=timeout,
            connect_args=connect_args,
            # Statement parameters hold secrets (external ids) and user data: errors and logs
            # show the SQL only.
            hide_parameters=True,
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any error."""
        with translate_errors():
            async with self.sessions() as session, session.begin():
                yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()


def is_connection_failure(exc: BaseException) -> bool:
    """True for failures that mean "Postgres is not reachable", not "the query is wrong"."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.InterfaceError):
        return True
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.DBAPIError):
        original = getattr(exc, "orig", None)
        name = type(original).__name__ if original is not None else ""
        text = str(exc).lower()
        return (
            "connection" in text
            or "cannot connect" in text
            or "terminat" in text
            or "shutdown" in name.lower()
            or "CannotConnectNow" in name
        )
    return isinstance(exc, ConnectionError | socket.gaierror | TimeoutError | OSError)


@contextlib.contextmanager
def translate_errors() -> Any:
    """Turn connection failures into `Unavailable`; let everything else through."""
    try:
        yield
    except errors.DomainError:
        raise
    except Exception as exc:
        if is_connection_failure(exc):
            raise errors.Unavailable(
                "the database is unreachable; retry later",
                reason="DATABASE_UNAVAILABLE",
                metadata={"cause": type(exc).__name__},
            ) from exc
        raise
