"""Registering an AWS account id (storage/accounts.py): serialized per AWS account id, so a
registration that waited for another's lock reads what that one committed; the tenancy rule
and the writes in one statement, which writes nothing when the rule refuses."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy import func, insert, select

from linkplane.server.storage import accounts, audit, driver, models, mutations
from linkplane.server.storage.database import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    await database.close()


def new_aws_account_id() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


def new_account(
    project: str, aws_account_id: str, time: datetime, shared: list[str] | None = None
) -> models.Account:
    return models.Account(
        uid=uuid.uuid4(),
        name=f"projects/{project}/accounts/{aws_account_id}",
        project=project,
        aws_account_id=aws_account_id,
        spec={},
        create_time=time,
        update_time=time,
        shared_with_projects=shared or [],
    )


def entry_for(account: models.Account) -> models.AuditEntry:
    return audit.entry(
        actor="user:a", action="RegisterAccount", resource=account.name, resource_uid=account.uid
    )


async def register(
    db: Database, project: str, aws_account_id: str, *, anywhere: bool = False, **kwargs: object
) -> accounts.Verdict:
    async with driver.transaction(db) as connection:
        time = await accounts.lock_registration(connection, aws_account_id)
        account = new_account(project, aws_account_id, time, **kwargs)  # type: ignore[arg-type]
        return await accounts.register(
            connection, account, entry=entry_for(account), outcome=None, anywhere=anywhere
        )


async def test_a_waiting_registration_sees_the_one_it_waited_for(db: Database) -> None:
    aws_account_id = new_aws_account_id()
    async with driver.transaction(db) as first:
        time = await accounts.lock_registration(first, aws_account_id)

        async def second_registration() -> accounts.Verdict:
            async with driver.transaction(db) as second:
                await accounts.lock_registration(second, aws_account_id)
                return await accounts.check_registration(
                    second,
                    name=f"projects/second/accounts/{aws_account_id}",
                    project="second",
                    aws_account_id=aws_account_id,
                    anywhere=False,
                )

        waiting = asyncio.create_task(second_registration())
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the second registration did not wait for the first's lock"
        account = new_account("first", aws_account_id, time)
        verdict = await accounts.register(
            first, account, entry=entry_for(account), outcome=None, anywhere=False
        )
        assert verdict == accounts.Verdict(taken=False, allowed=True)
    assert await asyncio.wait_for(waiting, 10) == accounts.Verdict(taken=False, allowed=False)


async def test_the_account_entry_and_outcome_are_written_together(db: Database) -> None:
    aws_account_id = new_aws_account_id()
    request_id = str(uuid.uuid4())
    async with driver.transaction(db) as connection:
        record = {"method": "RegisterAccount", "principal": "user:a", "request_id": request_id}
        await driver.row(
            connection,
            insert(models.RequestRecord).values(**record, request_digest="d"),
            {},
        )
        time = await accounts.lock_registration(connection, aws_account_id)
        account = new_account("p", aws_account_id, time)
        outcome = mutations.Outcome("RegisterAccount", "user:a", request_id, response=b"answer")
        verdict = await accounts.register(
            connection, account, entry=entry_for(account), outcome=outcome, anywhere=False
        )
    assert verdict == accounts.Verdict(taken=False, allowed=True)
    async with db.transaction() as session:
        stored = await session.get(models.Account, account.uid)
        assert stored is not None
        assert stored.create_time == time
        entries = await audit.for_resource(session, account.name)
        assert [(e.action, e.project, e.resource_uid) for e in entries] == [
            ("RegisterAccount", "p", account.uid)
        ]
        stored_record = await session.get(
            models.RequestRecord, ("RegisterAccount", "user:a", request_id)
        )
        assert stored_record is not None
        assert stored_record.response == b"answer"


async def test_a_refused_registration_writes_nothing(db: Database) -> None:
    aws_account_id = new_aws_account_id()
    assert await register(db, "owner", aws_account_id) == accounts.Verdict(False, True)
    assert await register(db, "owner", aws_account_id) == accounts.Verdict(True, True)
    assert await register(db, "other", aws_account_id) == accounts.Verdict(False, False)
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count()).where(models.Account.aws_account_id == aws_account_id)
        )
        entries = await session.scalar(
            select(func.count()).where(models.AuditEntry.resource.contains(aws_account_id))
        )
    assert (count, entries) == (1, 1)


async def test_only_the_first_projects_sharing_admits_another_project(db: Database) -> None:
    aws_account_id = new_aws_account_id()
    shared = ["projects/friend"]
    assert await register(db, "owner", aws_account_id, shared=shared) == (False, True)
    assert await register(db, "friend", aws_account_id, shared=["projects/third"]) == (False, True)
    # The friend's own sharing passes nothing on; a bootstrap administrator may still.
    assert await register(db, "third", aws_account_id) == (False, False)
    assert await register(db, "third", aws_account_id, anywhere=True) == (False, True)
