"""Alembic environment: runs migrations on linkplane's async engine, one transaction each.

The URL comes from the Alembic config (set by `linkplane-server migrate`) or from
LINKPLANE_DATABASE_URL when `alembic` runs by hand.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from linkplane.server.storage import database, models

config = context.config
target_metadata = models.Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("LINKPLANE_DATABASE_URL")
    if not url:
        raise SystemExit("set LINKPLANE_DATABASE_URL to the Postgres URL to migrate")
    return database.async_url(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=True,
        compare_type=True,
    )
    with context.begin_transaction():
        # Several replicas may start at once: the first takes this lock and migrates, the
        # others wait and then find nothing to do.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(724108)")
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
asyncio.run(_main()) if not config.attributes.get("connection") else _run(
    config.attributes["connection"]
)
