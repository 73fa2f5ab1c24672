"""Work claiming for reconcilers: leases taken with FOR UPDATE SKIP LOCKED, and fencing.

Any number of worker processes share one Postgres. A worker claims due rows (lease free or
expired) in one statement; SKIP LOCKED makes concurrent claimers pass over each other's rows
instead of queueing, and each claim increments the row's fencing token. Every later write by
that worker names the token it was given: if another worker has since claimed the row (the first
one stalled past its lease), the token no longer matches, the write changes nothing, and the
stale worker learns it lost the lease (`LeaseLost`).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Interval, String, and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkplane.server.storage import database, driver, models, queues

Model = type[models.Service] | type[models.Connection]


class LeaseLost(Exception):
    """Another worker claimed the resource; stop working on it without writing."""


@dataclass(frozen=True)
class Lease:
    kind: str
    uid: uuid.UUID
    token: int
    generation: int
    deleting: bool
    claimed_at: datetime | None = None
    """The claiming transaction's now(): a later next_reconcile_at means someone poked."""


@functools.cache
def _claim(model: Model) -> driver.Statement:
    """The claim of up to `limit` due rows of the model, as one statement: built and compiled
    once, since every worker sends it whenever it has room (a poll, a wake-up, a finished
    pass)."""
    now = func.now()
    due = (
        # The owner an expired lease still names: a claim of such a row is a hand-off.
        select(model.uid, model.lease_owner.label("previous_owner"))
        .where(
            model.next_reconcile_at <= now,
            or_(model.lease_expires_at.is_(None), model.lease_expires_at < now),
        )
        .order_by(model.next_reconcile_at)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    return driver.Statement.of(
        update(model)
        .where(model.uid == due.c.uid)
        .values(
            lease_owner=bindparam("owner", type_=String()),
            lease_expires_at=now + bindparam("lease", type_=Interval()),
            fencing_token=model.fencing_token + 1,
        )
        .returning(
            model.uid,
            model.fencing_token,
            model.generation,
            model.delete_time,
            now.label("claimed_at"),
            due.c.previous_owner,
        )
    )


async def claim(
    db: database.Database, model: Model, *, kind: str, owner: str, seconds: float, limit: int
) -> list[Lease]:
    """Lease up to `limit` due rows to `owner` for `seconds`. One statement in autocommit:
    the row locks its CTE takes with SKIP LOCKED are held until the UPDATE commits, so two
    claimers never take the same row, and no BEGIN or COMMIT costs a round trip."""
    values = {"limit": limit, "owner": owner, "lease": timedelta(seconds=seconds)}
    async with driver.autocommit(db) as connection:
        claimed = await connection.rows(_claim(model), values)
    queues.count_handoffs(kind, owner, (row["previous_owner"] for row in claimed))
    return [
        Lease(
            kind=kind,
            uid=row["uid"],
            token=row["fencing_token"],
            generation=row["generation"],
            deleting=row["delete_time"] is not None,
            claimed_at=row["claimed_at"],
        )
        for row in claimed
    ]


def poke_time() -> Any:
    """What a "look now" stores in next_reconcile_at: the statement's clock, not now().

    now() is the start of the writing transaction, which can precede a claim made while that
    transaction ran; `release` would then take the poke for one the pass had already seen, and
    the wake-up would be lost. The clock at the write is always later than such a claim.
    """
    return func.clock_timestamp()


async def poke_service(session: AsyncSession, name: str) -> None:
    """Have the Service of that name look now (at a new request, a deleted endpoint)."""
    await session.execute(
        update(models.Service)
        .where(models.Service.name == name)
        .values(next_reconcile_at=poke_time())
    )


async def poke_decided_connections(
    session: AsyncSession, service_uid: uuid.UUID, endpoint_ids: list[str]
) -> None:
    """The consumers' Connections look now instead of polling for the verdict. A Connection
    whose endpoint id is not stored yet (its create and this decision raced) is poked too."""
    condition: Any = models.Connection.endpoint_id.in_(endpoint_ids)
    service = await session.get(models.Service, service_uid)
    if service is not None:
        condition = or_(
            condition,
            and_(
                models.Connection.service == service.name,
                models.Connection.endpoint_id.is_(None),
            ),
        )
    await session.execute(
        update(models.Connection).where(condition).values(next_reconcile_at=poke_time())
    )


async def poke_connections(session: AsyncSession, uids: Collection[uuid.UUID]) -> None:
    """These Connections look now (an endpoint snapshot saw their endpoint change state);
    one already due keeps its earlier time."""
    now = poke_time()
    await session.execute(
        update(models.Connection)
        .where(models.Connection.uid.in_(uids), models.Connection.next_reconcile_at > now)
        .values(next_reconcile_at=now)
    )


def fenced(model: Model, lease: Lease) -> Any:
    """The WHERE clause every write under a lease carries."""
    return and_(model.uid == lease.uid, model.fencing_token == lease.token)


async def load(session: AsyncSession, model: Model, lease: Lease) -> Any:
    """The row under the lease, locked for this transaction; LeaseLost if the lease moved."""
    row = (
        await session.execute(select(model).where(fenced(model, lease)).with_for_update())
    ).scalar_one_or_none()
    if row is None:
        raise LeaseLost(f"{lease.kind} {lease.uid} was claimed by another worker")
    return row


@dataclass(frozen=True)
class PassStart:
    """What a pass needs to know of its row before it starts."""

    attempts: int
    """Passes in a row that failed (the backoff's count)."""
    has_condition: bool
    """The row's status carries the condition asked about (the engine's bug condition)."""


@functools.cache
def _pass_start(model: Model) -> driver.Statement:
    conditions = model.status["conditions"]
    # JSONB containment: some element of the conditions has both this type and this reason.
    wanted = func.jsonb_build_array(
        func.jsonb_build_object(
            "type",
            bindparam("condition_type", type_=String()),
            "reason",
            bindparam("condition_reason", type_=String()),
        )
    )
    return driver.Statement.of(
        select(
            model.attempts,
            func.coalesce(conditions.op("@>")(wanted), False).label("has_condition"),
        ).where(
            model.uid == bindparam("uid", type_=model.uid.type),
            model.fencing_token == bindparam("token", type_=model.fencing_token.type),
        )
    )


async def pass_start(
    db: database.Database, model: Model, lease: Lease, *, condition_type: str, condition_reason: str
) -> PassStart:
    """The row's attempts and whether it carries the condition, by one statement outside a
    transaction (the lease, not a row lock, keeps other workers away); LeaseLost if the lease
    moved."""
    values = {
        "uid": lease.uid,
        "token": lease.token,
        "condition_type": condition_type,
        "condition_reason": condition_reason,
    }
    async with driver.autocommit(db) as connection:
        row = await connection.row(_pass_start(model), values)
    if row is None:
        raise LeaseLost(f"{lease.kind} {lease.uid} was claimed by another worker")
    return PassStart(attempts=row["attempts"], has_condition=row["has_condition"])


@functools.cache
def _renewal(model: Model) -> Any:
    """A heartbeat: the lease runs for `lease` more from now, if it is still this one."""
    return (
        update(model)
        .where(model.uid == bindparam("uid"), model.fencing_token == bindparam("token"))
        .values(lease_expires_at=func.now() + bindparam("lease", type_=Interval()))
        .returning(model.uid)
    )


def heartbeats(db: database.Database) -> Heartbeats:
    """The process's heartbeats on `db` (the engine's and the fences')."""
    found = _HEARTBEATS.get(db)
    if found is None:
        found = _HEARTBEATS[db] = Heartbeats(db)
    return found


class Heartbeats:
    """The heartbeats of every lease a process holds, sent one at a time on a connection of
    their own (`driver.Dedicated`).

    Through the pool, a heartbeat queued behind the very passes it keeps alive: a worker runs
    up to four times LINKPLANE_WORKERS passes on LINKPLANE_DATABASE_POOL_SIZE connections, and
    a heartbeat that waited there for the two thirds of the lease it had left let the lease
    expire mid-pass (another worker then claimed the resource, and the pass ended at its next
    fence), or failed on the pool's timeout and stopped the heartbeats. A renewal is one short
    statement (~0.3 ms), so one connection serves hundreds of leases' heartbeats, each a third
    of the lease apart. The engine's beats and the fence before each AWS mutation
    (`Workspace.fence`) both go through it.
    """

    def __init__(self, db: database.Database) -> None:
        self._connection = driver.Dedicated(db)
        self._turn = asyncio.Lock()  # one statement at a time on one connection

    async def renew(self, model: Model, lease: Lease, seconds: float) -> None:
        """Extend the lease by `seconds` from now; LeaseLost if another worker claimed it."""
        values = {"uid": lease.uid, "token": lease.token, "lease": timedelta(seconds=seconds)}
        # A pass cancels its heartbeat when it ends, maybe mid-statement; the statement is
        # left to finish, since `Dedicated` drops a connection interrupted mid-protocol.
        sending = asyncio.ensure_future(self._send(model, values))
        sending.add_done_callback(_consume)
        if await asyncio.shield(sending) is None:
            raise LeaseLost(f"{lease.kind} {lease.uid} was claimed by another worker")

    async def _send(self, model: Model, values: dict[str, Any]) -> Any:
        async def send(held: driver.Connection) -> Any:
            return await driver.row(held, _renewal(model), values)

        async with self._turn:
            return await self._connection.read(send)


def _consume(sending: asyncio.Future[Any]) -> None:
    """A renewal whose caller was cancelled: its outcome concerns nobody any more."""
    if not sending.cancelled():
        sending.exception()


async def release(
    session: AsyncSession,
    model: Model,
    lease: Lease,
    *,
    delay_seconds: float,
    attempts: int,
    urgent: Any = None,
) -> None:
    """Give the lease back and schedule the next look.

    If the spec changed (or deletion was asked for) while this worker held the lease, the next
    look is immediate, whatever `delay_seconds` says: the API's "look now" must not be lost.
    The same holds for a poke by another reconciler (a Connection asking its Service to look
    at a new request, a Service telling a Connection it was accepted): it moved
    next_reconcile_at past the claim, and overwriting that with `delay_seconds` would lose it.
    """
    changed = or_(
        model.generation != lease.generation,
        (model.delete_time.is_not(None)) != lease.deleting,
    )
    if lease.claimed_at is not None:
        changed = or_(changed, model.next_reconcile_at > lease.claimed_at)
    if urgent is not None:
        changed = or_(changed, urgent)
    await session.execute(
        update(model)
        .where(fenced(model, lease))
        .values(
            lease_owner=None,
            lease_expires_at=None,
            attempts=attempts,
            next_reconcile_at=case(
                (changed, func.now()),
                else_=func.now() + timedelta(seconds=delay_seconds),
            ),
        )
        .execution_options(synchronize_session=False)
    )


_HEARTBEATS: weakref.WeakKeyDictionary[database.Database, Heartbeats] = weakref.WeakKeyDictionary()
