"""Registering an AWS account id (storage/accounts.py, migration 0006): serialized per AWS
account id, so a registration that waited for another's lock reads what that one committed;
the request id's claim, the tenancy rule and the writes in one call, which writes nothing (and
releases its claim) when the rule refuses."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from linkplane.server.domain import specs
from linkplane.server.storage import accounts, audit, driver, models, mutations
from linkplane.server.storage.database import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    await database.close()


def new_aws_account_id() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


def registration(
    project: str,
    aws_account_id: str,
    *,
    shared: list[str] | None = None,
    anywhere: bool = False,
    request_id: str = "",
    digest: str = "d",
) -> accounts.Registration:
    """A registration, with a request id claimed (and "answer" stored to replay) if given."""
    account = accounts.NewAccount(
        uid=uuid.uuid4(),
        name=f"projects/{project}/accounts/{aws_account_id}",
        project=project,
        aws_account_id=aws_account_id,
        spec=specs.AccountSpec(),
        shared_with_projects=shared or [],
    )
    outcome = None
    if request_id:
        outcome = mutations.Outcome("RegisterAccount", "user:a", request_id, response=b"answer")
    return accounts.Registration(
        account=account,
        actor="user:a",
        anywhere=anywhere,
        audit_details={"n": 1},
        outcome=outcome,
        request_digest=digest if request_id else "",
    )


async def register(
    db: Database, project: str, aws_account_id: str, **kwargs: object
) -> accounts.Verdict:
    async with driver.autocommit(db) as connection:
        registered = await accounts.register(
            connection,
            registration(project, aws_account_id, **kwargs),  # type: ignore[arg-type]
        )
    assert registered.earlier is None
    return registered.verdict


async def test_a_waiting_registration_sees_the_one_it_waited_for(db: Database) -> None:
    aws_account_id = new_aws_account_id()
    async with driver.transaction(db) as first:
        # Inside a transaction, the call's lock and writes last until it commits.
        registered = await accounts.register(first, registration("first", aws_account_id))
        assert registered.verdict == accounts.Verdict(taken=False, allowed=True)
        waiting = asyncio.create_task(register(db, "second", aws_account_id))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the second registration did not wait for the first's lock"
    # Its verdict was read after the lock, so it saw the first registration commit.
    assert await asyncio.wait_for(waiting, 10) == accounts.Verdict(taken=False, allowed=False)


async def test_the_account_entry_and_outcome_are_written_together(db: Database) -> None:
    aws_account_id = new_aws_account_id()
    request_id = str(uuid.uuid4())
    wanted = registration("p", aws_account_id, request_id=request_id)
    async with driver.autocommit(db) as connection:
        registered = await accounts.register(connection, wanted)
    assert registered.verdict == accounts.Verdict(taken=False, allowed=True)
    account = wanted.account
    async with db.transaction() as session:
        stored = await session.get(models.Account, account.uid)
        assert stored is not None
        assert (stored.create_time, stored.update_time) == (registered.time, registered.time)
        assert (stored.revision, stored.display_name, stored.labels) == (1, "", {})
        entries = await audit.for_resource(session, account.name)
        assert [
            (e.action, e.project, e.resource_uid, e.request_id, e.details) for e in entries
        ] == [("RegisterAccount", "p", account.uid, request_id, {"n": 1})]
        record = await session.get(models.RequestRecord, ("RegisterAccount", "user:a", request_id))
        assert record is not None
        assert (record.response, record.create_time) == (b"answer", registered.time)


async def test_a_used_request_id_answers_the_earlier_record_and_does_nothing(
    db: Database,
) -> None:
    aws_account_id = new_aws_account_id()
    request_id = str(uuid.uuid4())
    async with driver.autocommit(db) as connection:
        first = await accounts.register(
            connection, registration("p", aws_account_id, request_id=request_id)
        )
        # Another Account under the same id: the earlier record answers, nothing is written.
        again = await accounts.register(
            connection,
            registration("p", new_aws_account_id(), request_id=request_id, digest="other"),
        )
    assert again.earlier is not None
    assert (again.earlier.digest, again.earlier.response) == ("d", b"answer")
    assert again.earlier.time == first.time
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count()).where(models.AuditEntry.request_id == request_id)
        )
    assert count == 1


async def test_a_refused_registration_writes_nothing_and_releases_its_request_id(
    db: Database,
) -> None:
    aws_account_id = new_aws_account_id()
    request_id = str(uuid.uuid4())
    assert await register(db, "owner", aws_account_id) == accounts.Verdict(False, True)
    assert await register(db, "owner", aws_account_id) == accounts.Verdict(True, True)
    assert await register(db, "other", aws_account_id, request_id=request_id) == (False, False)
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count()).where(models.Account.aws_account_id == aws_account_id)
        )
        entries = await session.scalar(
            select(func.count()).where(models.AuditEntry.resource.contains(aws_account_id))
        )
        record = await session.get(models.RequestRecord, ("RegisterAccount", "user:a", request_id))
    assert (count, entries, record) == (1, 1, None)


async def test_only_the_first_projects_sharing_admits_another_project(db: Database) -> None:
    aws_account_id = new_aws_account_id()
    shared = ["projects/friend"]
    assert await register(db, "owner", aws_account_id, shared=shared) == (False, True)
    assert await register(db, "friend", aws_account_id, shared=["projects/third"]) == (False, True)
    # The friend's own sharing passes nothing on; a bootstrap administrator may still.
    assert await register(db, "third", aws_account_id) == (False, False)
    assert await register(db, "third", aws_account_id, anywhere=True) == (False, True)


async def test_checking_a_registration_writes_nothing(db: Database) -> None:
    aws_account_id = new_aws_account_id()
    assert await register(db, "owner", aws_account_id) == (False, True)
    async with driver.autocommit(db) as connection:
        for project, verdict in (("owner", (True, True)), ("other", (False, False))):
            assert (
                await accounts.check_registration(
                    connection,
                    name=f"projects/{project}/accounts/{aws_account_id}",
                    project=project,
                    aws_account_id=aws_account_id,
                    anywhere=False,
                )
                == verdict
            )
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count()).where(models.Account.aws_account_id == aws_account_id)
        )
    assert count == 1
