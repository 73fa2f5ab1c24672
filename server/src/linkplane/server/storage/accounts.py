"""Queries of AWS account registration: whether a project may register an AWS account id
(the tenancy rule, checked and applied in the statement that registers it), and who still
uses an Account (its Services and Connections)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Boolean, String, and_, bindparam, exists, func, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.domain import names
from linkplane.server.storage import driver, models, mutations, records


class Verdict(NamedTuple):
    """Whether an Account may be registered, read under the registration lock."""

    # An Account of this name exists.
    taken: bool
    # The AWS account id is registered nowhere yet, or first in this project, or that project
    # shares it with this one, or the caller may register it anywhere (`anywhere`).
    allowed: bool


def _registrable() -> mutations.Guard:
    account = models.table_of(models.Account)
    # The created row's own values (mutations.Guard), and two more.
    name = bindparam("created_name", type_=account.c.name.type)
    project = bindparam("created_project", type_=account.c.project.type)
    aws_account_id = bindparam("created_aws_account_id", type_=account.c.aws_account_id.type)
    project_name = bindparam("project_name", type_=String())  # projects/{project}
    anywhere = bindparam("anywhere", type_=Boolean())
    # The owner is the project that registered it first; only its shared_with_projects
    # counts (a project it was shared with cannot pass it on).
    first = (
        select(account.c.project, account.c.shared_with_projects)
        .where(account.c.aws_account_id == aws_account_id)
        .order_by(account.c.create_time, account.c.name)
        .limit(1)
        .subquery("owner")
    )
    owned_elsewhere = exists(
        select(first.c.project).where(
            first.c.project != project,
            not_(first.c.shared_with_projects.has_key(project_name)),
        )
    )
    taken = exists(select(account.c.uid).where(account.c.name == name))
    allowed = or_(anywhere, not_(owned_elsewhere))
    return mutations.Guard(
        and_(not_(taken), allowed), (taken.label("taken"), allowed.label("allowed"))
    )


_REGISTRABLE = _registrable()
# Built once: SQLAlchemy reuses their compiled SQL, asyncpg its prepared statements.
_VERDICT = select(*_REGISTRABLE.report)
_LOCK = select(
    func.pg_advisory_xact_lock(
        func.hashtext(literal("linkplane-account:") + bindparam("aws_account_id", type_=String()))
    ),
    func.now().label("now"),
)


async def lock_registration(executor: driver.AnyConnection, aws_account_id: str) -> datetime:
    """Serialize registrations of one AWS account id until the transaction ends (a
    transaction-scoped advisory lock), so two projects cannot both register it at once; the
    transaction's time (Postgres's now(): a new Account's create and update time).

    The verdict must come from a later statement: under READ COMMITTED each statement reads
    its own snapshot, and only one taken after the lock sees a registration committed while
    this one waited for it."""
    locked = await driver.row(executor, _LOCK, {"aws_account_id": aws_account_id})
    assert locked is not None  # a SELECT without FROM answers one row
    time: datetime = locked["now"]
    return time


async def check_registration(
    executor: driver.AnyConnection, *, name: str, project: str, aws_account_id: str, anywhere: bool
) -> Verdict:
    """The verdict on registering `name` (after `lock_registration`), without registering."""
    values = {
        "created_name": name,
        "created_project": project,
        "created_aws_account_id": aws_account_id,
        **_guard_values(project, anywhere),
    }
    answer = await driver.row(executor, _VERDICT, values)
    assert answer is not None  # a SELECT without FROM answers one row
    return Verdict(answer["taken"], answer["allowed"])


async def register(
    executor: driver.AnyConnection,
    account: models.Account,
    *,
    entry: models.AuditEntry,
    outcome: mutations.Outcome | None,
    anywhere: bool,
) -> Verdict:
    """Insert the Account, its audit entry and the request's outcome, in one statement (after
    `lock_registration`), if the verdict allows it; the verdict."""
    answer = await mutations.write(
        executor,
        entry=entry,
        outcome=outcome,
        created=account,
        guard=_REGISTRABLE,
        guard_values=_guard_values(account.project, anywhere),
    )
    return Verdict(answer["taken"], answer["allowed"])


def _guard_values(project: str, anywhere: bool) -> dict[str, object]:
    return {"project_name": names.project_name(project), "anywhere": anywhere}


async def users(session: AsyncSession, name: str) -> int:
    """How many Services and Connections act in the Account (deleting it waits for none)."""
    return await records.count_where(
        session, models.Service, models.Service.provider_account == name
    ) + await records.count_where(
        session, models.Connection, models.Connection.consumer_account == name
    )
