"""Queries of AWS account registration: who owns an AWS account id, and who still uses an
Account (its Services and Connections), for the AccountService's tenancy rules."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import models, records


class Owner(NamedTuple):
    """The project that registered an AWS account id first, and whom it shared it with."""

    project: str
    shared_with_projects: list[str]


async def lock_registration(session: AsyncSession, aws_account_id: str) -> None:
    """Serialize registrations of one AWS account id until the transaction ends (a
    transaction-scoped advisory lock), so two projects cannot both register it at once."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('linkplane-account:' || :id))"),
        {"id": aws_account_id},
    )


async def owner(session: AsyncSession, aws_account_id: str) -> Owner | None:
    """The first registration of the AWS account id (by create time, then name), if any."""
    row = (
        await session.execute(
            select(models.Account.project, models.Account.shared_with_projects)
            .where(models.Account.aws_account_id == aws_account_id)
            .order_by(models.Account.create_time, models.Account.name)
            .limit(1)
        )
    ).first()
    return None if row is None else Owner(row.project, row.shared_with_projects)


async def users(session: AsyncSession, name: str) -> int:
    """How many Services and Connections act in the Account (deleting it waits for none)."""
    return await records.count_where(
        session, models.Service, models.Service.provider_account == name
    ) + await records.count_where(
        session, models.Connection, models.Connection.consumer_account == name
    )
