"""Registering an AWS account id is serialized: a registration that waited for another's lock
reads what that one committed (storage/accounts.py, `begin_registration`)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert

from linkplane.server.storage import accounts, audit, models, mutations
from linkplane.server.storage.database import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    await database.close()


def new_account(
    project: str, aws_account_id: str, registration: accounts.Registration
) -> models.Account:
    return models.Account(
        uid=uuid.uuid4(),
        name=f"projects/{project}/accounts/{aws_account_id}",
        project=project,
        aws_account_id=aws_account_id,
        spec={},
        create_time=registration.time,
        update_time=registration.time,
    )


async def test_a_waiting_registration_sees_the_one_it_waited_for(db: Database) -> None:
    aws_account_id = "".join(secrets.choice("0123456789") for _ in range(12))
    first_name = f"projects/first/accounts/{aws_account_id}"
    second_name = f"projects/second/accounts/{aws_account_id}"
    async with db.transaction() as first:
        registration = await accounts.begin_registration(first, first_name, aws_account_id)
        assert registration == accounts.Registration(registration.time, False, None)

        async def second_registration() -> accounts.Registration:
            async with db.transaction() as second:
                return await accounts.begin_registration(second, second_name, aws_account_id)

        waiting = asyncio.create_task(second_registration())
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the second registration did not wait for the first's lock"
        row = new_account("first", aws_account_id, registration)
        entry = audit.entry(
            actor="user:a", action="RegisterAccount", resource=first_name, resource_uid=row.uid
        )
        await mutations.write(first, entry=entry, outcome=None, created=row)
    seen = await asyncio.wait_for(waiting, 10)
    assert seen.owner == accounts.Owner("first", [])
    assert not seen.taken
    assert seen.time > registration.time


async def test_the_written_row_entry_and_outcome_are_stored(db: Database) -> None:
    aws_account_id = "".join(secrets.choice("0123456789") for _ in range(12))
    name = f"projects/p/accounts/{aws_account_id}"
    request_id = str(uuid.uuid4())
    async with db.transaction() as session:
        registration = await accounts.begin_registration(session, name, aws_account_id)
        assert await session.scalar(
            insert(models.RequestRecord)
            .values(
                method="RegisterAccount",
                principal="user:a",
                request_id=request_id,
                request_digest="d",
            )
            .returning(models.RequestRecord.request_id)
        )
        row = new_account("p", aws_account_id, registration)
        entry = audit.entry(
            actor="user:a", action="RegisterAccount", resource=name, resource_uid=row.uid
        )
        outcome = mutations.Outcome("RegisterAccount", "user:a", request_id, response=b"answer")
        await mutations.write(session, entry=entry, outcome=outcome, created=row)
    async with db.transaction() as session:
        stored = await session.get(models.Account, row.uid)
        assert stored is not None and stored.create_time == registration.time
        entries = await audit.for_resource(session, name)
        assert [(e.action, e.project, e.resource_uid) for e in entries] == [
            ("RegisterAccount", "p", row.uid)
        ]
        record = await session.get(models.RequestRecord, ("RegisterAccount", "user:a", request_id))
        assert record is not None and record.response == b"answer"
        again = await accounts.begin_registration(session, name, aws_account_id)
        assert again.taken and again.owner == accounts.Owner("p", [])
