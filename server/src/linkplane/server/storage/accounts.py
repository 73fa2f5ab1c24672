"""Queries of AWS account registration: who owns an AWS account id, and who still uses an
Account (its Services and Connections), for the AccountService's tenancy rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, exists, func, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import driver, models, records


class Owner(NamedTuple):
    """The project that registered an AWS account id first, and whom it shared it with."""

    project: str
    shared_with_projects: list[str]


class Registration(NamedTuple):
    """What registering an AWS account id under a name meets, read under the registration lock."""

    # The transaction's time (Postgres's now()): the new Account's create and update time.
    time: datetime
    # An Account of this name exists.
    taken: bool
    owner: Owner | None


def _registration_statements() -> tuple[Select[Any], Select[Any]]:
    account = models.table_of(models.Account)
    aws_account_id = bindparam("aws_account_id", type_=account.c.aws_account_id.type)
    lock = select(
        func.pg_advisory_xact_lock(func.hashtext(literal("linkplane-account:") + aws_account_id)),
        func.now().label("now"),
    )
    first = (
        select(account.c.project, account.c.shared_with_projects)
        .where(account.c.aws_account_id == aws_account_id)
        .order_by(account.c.create_time, account.c.name)
        .limit(1)
        .subquery()
        .lateral()
    )
    taken = exists().where(account.c.name == bindparam("name"))
    read = select(taken.label("taken"), first.c.project, first.c.shared_with_projects).select_from(
        select(literal(1)).subquery().outerjoin(first, true())
    )
    return lock, read


# Built once: SQLAlchemy reuses their compiled SQL, asyncpg its prepared statements.
_LOCK, _READ = _registration_statements()


async def begin_registration(
    executor: driver.AnyConnection, name: str, aws_account_id: str
) -> Registration:
    """Serialize registrations of one AWS account id until the transaction ends (a
    transaction-scoped advisory lock), so two projects cannot both register it at once; then
    read whether `name` is taken and who owns the AWS account id (its first registration, by
    create time, then name). Two statements: under READ COMMITTED each statement reads its own
    snapshot, and only one taken after the lock sees a registration committed while it waited."""
    locked = await driver.row(executor, _LOCK, {"aws_account_id": aws_account_id})
    row = await driver.row(executor, _READ, {"aws_account_id": aws_account_id, "name": name})
    # Both select exactly one row.
    assert locked is not None
    assert row is not None
    project, shared = row["project"], row["shared_with_projects"]
    owner = None if project is None else Owner(project, shared)
    return Registration(locked["now"], bool(row["taken"]), owner)


async def users(session: AsyncSession, name: str) -> int:
    """How many Services and Connections act in the Account (deleting it waits for none)."""
    return await records.count_where(
        session, models.Service, models.Service.provider_account == name
    ) + await records.count_where(
        session, models.Connection, models.Connection.consumer_account == name
    )
