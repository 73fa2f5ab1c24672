"""What the benchmarks share: a database of the run's own, a free loopback port, a process's
CPU time, and the requests that set up a fleet (register accounts, a service that auto-accepts
its consumers, a connection from a consumer VPC)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from linkplane.server.storage import changes, database, migrations
from linkplane.server.storage.embedded import EmbeddedPostgres
from linkplane.v1 import account_pb2, account_service_pb2, connection_pb2, service_pb2

REGION = "us-east-1"


@contextlib.asynccontextmanager
async def fresh_database(server_url: str | None) -> AsyncIterator[str]:
    """A new, migrated database for this run, dropped at its end (its async URL).

    On the Postgres at `server_url`, else at LINKPLANE_TEST_DATABASE_URL, else on an embedded
    Postgres started for the run. Never the given database itself: a run that met an earlier
    run's rows would reconcile them too, against a simulator that has never seen their AWS
    objects (one run measured 1,000 "deleted out of band" endpoints being recreated, all the
    previous run's), and would inherit its drained rate-limit buckets.
    """
    embedded = None
    admin = server_url or os.environ.get("LINKPLANE_TEST_DATABASE_URL")
    if admin is None:
        embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="linkplane-bench-pg-")))
        admin = await asyncio.to_thread(embedded.start)
    name = f"linkplane_bench_{secrets.token_hex(4)}"

    async def admin_sql(sql: str) -> None:
        connection = await asyncpg.connect(changes.asyncpg_dsn(admin))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    await admin_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(database.async_url(admin)).set(database=name).render_as_string(False)
        await migrations.upgrade_async(url)
        yield url
    finally:
        with contextlib.suppress(Exception):
            await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def register(accounts_api: Any, parent: str, account_ids: list[str]) -> None:
    """Register each AWS account in the project, with the simulator's role for it."""
    for account in account_ids:
        await accounts_api.RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=parent,
                account_id=account,
                account=account_pb2.Account(role_arn=f"arn:aws:iam::{account}:role/linkplane"),
            )
        )


def auto_accepting_service(
    parent: str, provider: str, provider_net: dict[str, Any], consumers: list[str]
) -> service_pb2.Service:
    """A service behind a managed NLB that allows and accepts every one of `consumers`."""
    return service_pb2.Service(
        provider_account=f"{parent}/accounts/{provider}",
        region=REGION,
        load_balancer=service_pb2.LoadBalancer(
            managed=service_pb2.ManagedLoadBalancer(
                subnet_ids=provider_net["subnet_ids"],
                listeners=[service_pb2.Listener(port=443)],
                targets=[service_pb2.Target(id="10.1.0.10")],
            )
        ),
        allowed_principals=consumers,
        acceptance_policy=service_pb2.AcceptancePolicy(
            accept_rules=[service_pb2.AcceptRule(principal=a) for a in consumers]
        ),
    )


def connection(
    parent: str, service_id: str, account: str, network: dict[str, Any]
) -> connection_pb2.Connection:
    """A connection from `account`'s VPC `network` to the project's service `service_id`."""
    return connection_pb2.Connection(
        service=f"{parent}/services/{service_id}",
        consumer_account=f"{parent}/accounts/{account}",
        region=REGION,
        vpc_id=network["vpc_id"],
        subnet_ids=network["subnet_ids"],
    )
