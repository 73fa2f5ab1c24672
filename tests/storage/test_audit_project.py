"""Migration 0003: audit entries written before it get their project from their resource name,
and the append-only trigger is back on afterwards."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from linkplane.server.storage import audit, changes, migrations


async def test_entries_written_before_0003_get_their_project(database_url):
    name = f"linkplane_audit_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(changes.asyncpg_dsn(database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        config = migrations.alembic_config(url)
        await asyncio.to_thread(command.upgrade, config, "0002")
        connection = await asyncpg.connect(changes.asyncpg_dsn(url))
        try:
            await connection.executemany(
                "INSERT INTO audit_log (actor, action, resource, request_id, details) "
                "VALUES ('a', 'X', $1, '', '{}')",
                [("projects/pay/services/s",), ("projects/pay",), ("operations/o1",)],
            )
            await asyncio.to_thread(command.upgrade, config, "head")
            rows = await connection.fetch("SELECT resource, project FROM audit_log ORDER BY id")
            assert [(r["resource"], r["project"]) for r in rows] == [
                ("projects/pay/services/s", "pay"),
                ("projects/pay", "pay"),
                ("operations/o1", ""),
            ]
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await connection.execute("UPDATE audit_log SET project = 'other'")
        finally:
            await connection.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_the_project_of_a_resource_name():
    assert audit.project_of("projects/pay/services/s/serviceConnections/vpce-1") == "pay"
    assert audit.project_of("projects/pay") == "pay"
    assert audit.project_of("operations/o1") == ""
    assert audit.project_of("vpce-1") == ""
