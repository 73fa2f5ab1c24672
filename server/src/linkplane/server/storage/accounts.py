"""Queries of AWS account registration: whether a project may register an AWS account id
(the tenancy rule, checked and applied in the call that registers it), and who still uses an
Account (its Services and Connections).

A registration is one call of `linkplane_register_account` (migration 0006), in one round
trip. In its one transaction it
1. takes the AWS account id's lock (transaction-scoped), so two registrations of one AWS
   account id, from two projects say, run one after the other;
2. claims the request id, if there is one; when it was used before, it answers the earlier
   record and does nothing else (the caller replays it, or refuses a reused id);
3. reads the verdict: whether the name is taken, and whether the tenancy rule allows it. The
   function is VOLATILE, so under READ COMMITTED this statement reads a snapshot taken after
   the lock: it sees a registration committed while this one waited;
4. when the verdict allows it, inserts the Account, its audit entry and the response the
   request id replays; when it refuses, writes nothing and releases its claim.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Boolean, LargeBinary, String, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.domain import specs
from linkplane.server.storage import driver, models, mutations, records, requests


class Verdict(NamedTuple):
    """Whether an Account may be registered, read under the registration lock."""

    # An Account of this name exists.
    taken: bool
    # The AWS account id is registered nowhere yet, or first in this project, or that project
    # shares it with this one, or the caller may register it anywhere (`anywhere`).
    allowed: bool


@dataclass(frozen=True, slots=True)
class NewAccount:
    """An Account to register: its row's columns but the times, which are the registration's.
    Plain data, not a `models.Account`, which no session would ever see: the ORM's instrumented
    constructor took a tenth of RegisterAccount's samples in py-spy (bench/README.md)."""

    uid: uuid.UUID
    name: str
    project: str
    aws_account_id: str
    spec: specs.AccountSpec
    shared_with_projects: list[str] = field(default_factory=list)
    revision: int = 1


@dataclass(frozen=True)
class Registration:
    """A new Account, who registers it, what its audit entry says, and whether the caller may
    register the AWS account id anywhere (a bootstrap administrator)."""

    account: NewAccount
    actor: str
    anywhere: bool
    audit_details: dict[str, Any] = field(default_factory=dict)
    # The request id it claims and the response a retry with it replays: the Account as
    # answered, without its create and update time, which are the registration's and so the
    # request record's own (`Registered.earlier.time`). With the request's digest.
    outcome: mutations.Outcome | None = None
    request_digest: str = ""


@dataclass(frozen=True)
class Registered:
    """What a registration did: its verdict and time, or, when its request id was used
    before, that earlier request's record (and nothing else was done)."""

    verdict: Verdict
    time: datetime
    earlier: requests.Replay | None = None


_REGISTER = text(
    "SELECT taken, allowed, registered_at, earlier_digest, earlier_operation_id,"
    " earlier_response, earlier_time FROM linkplane_register_account("
    ":uid, :name, :project, :aws_account_id, :display_name, :labels, :spec,"
    " :shared_with_projects, :anywhere, :write, :actor, :audit_details, :method, :principal,"
    " :request_id, :request_digest, :response)"
).bindparams(
    bindparam("uid", type_=UUID(as_uuid=True)),
    bindparam("labels", type_=JSONB()),
    bindparam("spec", type_=JSONB()),
    bindparam("shared_with_projects", type_=JSONB()),
    bindparam("anywhere", type_=Boolean()),
    bindparam("write", type_=Boolean()),
    bindparam("audit_details", type_=JSONB()),
    bindparam("response", type_=LargeBinary()),
    *(
        bindparam(name, type_=String())
        for name in (
            "name",
            "project",
            "aws_account_id",
            "display_name",
            "actor",
            "method",
            "principal",
            "request_id",
            "request_digest",
        )
    ),
)


# What a call that writes nothing passes for what only writing reads.
_NOTHING_TO_WRITE: dict[str, Any] = {
    "uid": None,
    "display_name": "",
    "labels": None,
    "spec": None,
    "shared_with_projects": None,
    "write": False,
    "actor": "",
    "audit_details": None,
    "method": "",
    "principal": "",
    "request_id": "",
    "request_digest": "",
    "response": None,
}


async def register(executor: driver.AnyConnection, registration: Registration) -> Registered:
    """Register the Account if its request id is new and the verdict allows it (see the
    module's docstring). Called outside a transaction, it is one; inside one, the lock and
    the writes last until that one ends."""
    account, outcome = registration.account, registration.outcome
    values: dict[str, Any] = {
        "uid": account.uid,
        "name": account.name,
        "project": account.project,
        "aws_account_id": account.aws_account_id,
        "display_name": account.spec.display_name,
        "labels": account.spec.labels,
        "spec": specs.to_json(account.spec),
        "shared_with_projects": account.shared_with_projects,
        "anywhere": registration.anywhere,
        "write": True,
        "actor": registration.actor,
        "audit_details": registration.audit_details,
    }
    if outcome is not None:
        values.update(mutations.replay_values(outcome), request_digest=registration.request_digest)
    return _registered(await driver.row(executor, _REGISTER, {**_NOTHING_TO_WRITE, **values}))


async def check_registration(
    executor: driver.AnyConnection, *, name: str, project: str, aws_account_id: str, anywhere: bool
) -> Verdict:
    """The verdict on registering `name`, read under the same lock, without registering."""
    values = {"name": name, "project": project, "aws_account_id": aws_account_id}
    answer = await driver.row(
        executor, _REGISTER, {**_NOTHING_TO_WRITE, **values, "anywhere": anywhere}
    )
    return _registered(answer).verdict


def _registered(answer: Mapping[str, Any] | None) -> Registered:
    assert answer is not None  # a function with OUT parameters answers one row
    time: datetime = answer["registered_at"]
    if answer["earlier_digest"] is not None:
        earlier = requests.Replay(
            answer["earlier_digest"],
            answer["earlier_operation_id"],
            answer["earlier_response"],
            answer["earlier_time"],
        )
        # No verdict was read: the earlier request answers for this one.
        return Registered(Verdict(taken=False, allowed=False), time, earlier)
    return Registered(Verdict(bool(answer["taken"]), bool(answer["allowed"])), time)


async def users(session: AsyncSession, name: str) -> int:
    """How many Services and Connections act in the Account (deleting it waits for none)."""
    return await records.count_where(
        session, models.Service, models.Service.provider_account == name
    ) + await records.count_where(
        session, models.Connection, models.Connection.consumer_account == name
    )
