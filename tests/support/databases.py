"""Fresh, migrated databases on the test Postgres: one per test package, more for modules or
tests that run their own workers (no other worker may claim their rows or change their timing).

The migrations run once per test run, into a template database; every fresh database is a copy
of it (`CREATE DATABASE ... TEMPLATE`, a file copy), so a database costs tens of milliseconds
instead of a full Alembic upgrade."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from linkplane.server.storage import changes, database, migrations
from linkplane.server.storage.embedded import EmbeddedPostgres


@contextlib.contextmanager
def postgres_server_url() -> Iterator[str]:
    """An administrative URL of the test Postgres: LINKPLANE_TEST_DATABASE_URL when set (CI
    points it at the machine's server), else an embedded Postgres started for the session."""
    configured = os.environ.get("LINKPLANE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="linkplane-test-pg-")))
    try:
        yield embedded.start()
    finally:
        embedded.stop()


def _admin_sql(admin_url: str, sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(changes.asyncpg_dsn(admin_url))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@dataclasses.dataclass(frozen=True)
class DatabaseServer:
    """The test Postgres, with a migrated template database to copy fresh databases from."""

    admin_url: str
    template: str

    def fresh(self, prefix: str) -> contextlib.AbstractContextManager[str]:
        """A fresh, migrated database `{prefix}_{random}` (its async URL); dropped afterwards."""
        return self._created(prefix, f' TEMPLATE "{self.template}"')

    def empty(self, prefix: str) -> contextlib.AbstractContextManager[str]:
        """A fresh database with no schema at all, for a test that migrates it the way a
        deployment does (tests/deploy); dropped afterwards."""
        return self._created(prefix, "")

    @contextlib.contextmanager
    def _created(self, prefix: str, template_clause: str) -> Iterator[str]:
        name = f"{prefix}_{secrets.token_hex(4)}"
        _admin_sql(self.admin_url, f'CREATE DATABASE "{name}"{template_clause}')
        try:
            yield _url_of(self.admin_url, name)
        finally:
            _admin_sql(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def server_with_template() -> Iterator[DatabaseServer]:
    """The test Postgres (`postgres_server_url`) with a template migrated by the real Alembic
    scripts, dropped at the end of the run."""
    with postgres_server_url() as admin:
        template = f"linkplane_template_{secrets.token_hex(4)}"
        _admin_sql(admin, f'CREATE DATABASE "{template}"')
        try:
            migrations.upgrade(_url_of(admin, template))
            yield DatabaseServer(admin, template)
        finally:
            _admin_sql(admin, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


def _url_of(admin_url: str, name: str) -> str:
    url = make_url(database.async_url(admin_url)).set(database=name)
    return url.render_as_string(hide_password=False)
