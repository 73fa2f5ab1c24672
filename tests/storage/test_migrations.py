"""The ORM models and the Alembic migrations describe the same schema."""

from __future__ import annotations

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from linkplane.server.storage import changes, models


async def test_models_match_migrations(database_url):
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync), models.Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations disagree; add a migration: {diff}"


async def test_audit_log_is_append_only(database_url):
    connection = await asyncpg.connect(changes.asyncpg_dsn(database_url))
    try:
        await connection.execute(
            "INSERT INTO audit_log (actor, action, resource, request_id, details) "
            "VALUES ('test', 'Test', 'x', '', '{}')"
        )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("UPDATE audit_log SET actor = 'forged'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("DELETE FROM audit_log")
    finally:
        await connection.close()


async def test_old_request_ids_expire(database_url):
    from datetime import timedelta

    from sqlalchemy import text as sql

    from linkplane.server.storage import database, requests

    db = database.Database(database_url)
    try:
        async with db.transaction() as session:
            await requests.claim(session, method="Test", request_id="old", digest="d")
            await requests.claim(session, method="Test", request_id="new", digest="d")
            await session.execute(
                sql(
                    "UPDATE request_ids SET create_time = now() - interval '8 days' "
                    "WHERE request_id = 'old'"
                )
            )
        async with db.transaction() as session:
            assert await requests.expire(session, older_than=timedelta(days=7)) >= 1
        async with db.transaction() as session:
            remaining = (
                (
                    await session.execute(
                        sql("SELECT request_id FROM request_ids WHERE method = 'Test'")
                    )
                )
                .scalars()
                .all()
            )
        assert remaining == ["new"]
    finally:
        await db.close()
