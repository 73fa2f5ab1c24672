"""The worker loop: claim due resources, reconcile them concurrently, requeue with backoff.

One `Engine` per process. It wakes on the change feed (LISTEN/NOTIFY: a new spec is worked on
at once, on whichever replica claims it first) and polls as a fallback. Each claimed resource
runs in its own task with a heartbeat that extends the lease; a reconcile that raises a
retryable AWS error is requeued after jittered exponential backoff, one that raises a permanent
error is marked FAILED by its reconciler.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from prometheus_client import Counter, Gauge

from linkplane.server.aws import errors as aws_errors
from linkplane.server.aws import throttlers
from linkplane.server.domain import errors as domain_errors
from linkplane.server.reconciler import failures, progress, traces
from linkplane.server.storage import changes, database, leases, records

log = structlog.get_logger("linkplane.reconciler")

RECONCILES = Counter("linkplane_reconciles_total", "Reconcile passes", ["kind", "outcome"])
BUGS = Counter(
    "linkplane_reconciler_bugs_total",
    "Reconcile passes that ended in an unexpected exception (a linkplane bug)",
    ["kind", "error"],
)
BUG_CONDITION = "Reconciling"
"""The condition a resource carries while its passes end in an unexpected exception."""
BUG_REASON = "InternalError"
IN_FLIGHT = Gauge("linkplane_reconciles_in_flight", "Reconciles running now", ["kind"])
WAITING_FACTOR = 4
"""Passes asleep on AWS rate-limit tokens do not take a slot, up to this many times the
concurrency in all: the bound on leases one process holds at once."""

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0


@dataclass(frozen=True)
class Pass:
    """What a reconcile pass asks of the engine: when to look again."""

    requeue_after: float


class Reconciler(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def model(self) -> leases.Model: ...

    async def reconcile(self, lease: leases.Lease) -> Pass: ...

    async def record_failure(
        self, lease: leases.Lease, error: failures.Failure, attempts: int
    ) -> None: ...

    def urgent(self) -> Any: ...


def backoff(attempts: int, hint: float | None = None) -> float:
    """Full-jitter exponential backoff, never below AWS's own hint."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(attempts, 16))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
    return max(delay, hint or 0.0)


class Engine:
    def __init__(
        self,
        *,
        db: database.Database,
        feed: changes.ChangeFeed,
        reconcilers: Sequence[Reconciler],
        concurrency: int,
        lease_seconds: float,
        poll_seconds: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.feed = feed
        self.reconcilers = {r.kind: r for r in reconcilers}
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._running: dict[tuple[str, uuid.UUID], asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._token_waits = _TokenWaits(self._wake)
        self._task: asyncio.Task[None] | None = None
        self._feed_task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._feed_task = asyncio.create_task(self._listen(), name="reconciler-wakeups")
        self._task = asyncio.create_task(self._loop(), name="reconciler-loop")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Cancel every pass where it stands: a reconcile may stop at any line (the next
        pass, here or on another replica, finds what it left in AWS by tag)."""
        self._stopping = True
        tasks = [t for t in (self._task, self._feed_task, *self._running.values()) if t]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=grace_seconds)
            if stuck:
                log.warning("reconciler.stop_timeout", tasks=len(stuck))
        self._running.clear()

    async def _listen(self) -> None:
        async with self.feed.subscribe() as queue:
            while True:
                await queue.get()
                self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self._claim_and_start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconciler.claim_failed", error=str(exc))
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives just after the wake-up, and the loop would outlive stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def _claim_and_start(self) -> None:
        for kind, reconciler in self.reconcilers.items():
            room = self.room()
            if room <= 0:
                return
            claimed = await leases.claim(
                self.db,
                reconciler.model,
                kind=kind,
                owner=self.owner,
                seconds=self.lease_seconds,
                limit=room,
            )
            for lease in claimed:
                key = (kind, lease.uid)
                work = functools.partial(self._work, reconciler, lease)
                task = asyncio.create_task(
                    traces.traced(self.db, lease, work), name=f"reconcile-{kind}"
                )
                self._running[key] = task
                task.add_done_callback(functools.partial(self._finished, key))

    def room(self) -> int:
        """How many more passes may start now: `concurrency` passes at work, not counting the
        ones asleep until an account's rate-limit bucket pays their token, which would
        otherwise keep every other account waiting behind the busiest one's bucket."""
        working = len(self._running) - self._token_waits.count
        return min(
            self.concurrency - working,
            self.concurrency * WAITING_FACTOR - len(self._running),
        )

    def _finished(self, key: tuple[str, uuid.UUID], _task: asyncio.Task[None]) -> None:
        self._running.pop(key, None)
        # A slot is free: look for more work now rather than at the next poll.
        self._wake.set()

    async def _heartbeat(self, reconciler: Reconciler, lease: leases.Lease) -> None:
        """Renew the pass's lease every third of its length, until the pass ends (it cancels
        this) or another worker claims the resource (the pass learns it at its next fence).

        A beat that meets a database outage is not the end of the lease: the lease may still
        hold, and the next beat may get through, so it is logged and the beats go on."""
        heartbeats = leases.heartbeats(self.db)
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await heartbeats.renew(reconciler.model, lease, self.lease_seconds)
            except leases.LeaseLost:
                return
            except Exception as exc:
                if not database_unavailable(exc):
                    log.exception(
                        "reconciler.bug", kind=reconciler.kind, uid=str(lease.uid), error=str(exc)
                    )
                    return
                log.warning(
                    "reconciler.heartbeat_failed",
                    kind=reconciler.kind,
                    uid=str(lease.uid),
                    error=str(exc.__cause__ or exc),
                )

    async def _clear_bug(
        self, session: database.Session, reconciler: Reconciler, lease: leases.Lease
    ) -> None:
        """A pass succeeded after failing unexpectedly: drop the InternalError condition (in
        the release's transaction, so nobody sees the condition gone and the attempts kept)."""
        row = await leases.load(session, reconciler.model, lease)
        status = dict(row.status or {})
        conditions = [c for c in status.get("conditions", []) if c.get("type") != BUG_CONDITION]
        if len(conditions) == len(status.get("conditions", [])):
            return
        status["conditions"] = conditions
        row.status = status
        row.revision += 1
        records.mark_updated(row)
        await changes.notify(session, kind=reconciler.kind, name=row.name, uid=str(row.uid))

    async def _work(self, reconciler: Reconciler, lease: leases.Lease) -> None:
        # This pass's task (and the tasks it starts) report their token waits to the engine.
        throttlers.TOKEN_WAITS.set(_PassWaits(self._token_waits))
        started = time.monotonic()
        ended: float | None = None
        IN_FLIGHT.labels(reconciler.kind).inc()
        heartbeat = asyncio.create_task(self._heartbeat(reconciler, lease))
        attempts = 0
        delay = 1.0
        healed = False
        outcome = "ok"
        try:
            start = await leases.pass_start(
                self.db,
                reconciler.model,
                lease,
                condition_type=BUG_CONDITION,
                condition_reason=BUG_REASON,
            )
            attempts, had_bug = start.attempts, start.has_condition
            try:
                result = await reconciler.reconcile(lease)
                delay, attempts = result.requeue_after, 0
                healed = had_bug
            except (aws_errors.AwsError, failures.ReconcileError) as error:
                attempts += 1
                outcome = "retry" if error.retryable else "failed"
                await reconciler.record_failure(lease, error, attempts)
                if not error.retryable:
                    delay = 60.0
                elif error.requeue_after is not None:
                    # The reconciler scheduled this retry itself (a grace period).
                    delay = error.requeue_after
                else:
                    delay = backoff(attempts, error.retry_after)
                log.info(
                    "reconciler.aws_error",
                    kind=reconciler.kind,
                    uid=str(lease.uid),
                    code=error.code,
                    action=error.action,
                    retryable=error.retryable,
                    attempts=attempts,
                )
            heartbeat.cancel()
            # The work is done; only the fenced release is left, and nobody can claim before
            # it commits, so this is where this process's hold on the resource ends.
            ended = time.monotonic()
            async with self.db.transaction() as session:
                if healed:
                    await self._clear_bug(session, reconciler, lease)
                await leases.release(
                    session,
                    reconciler.model,
                    lease,
                    delay_seconds=delay,
                    attempts=attempts,
                    urgent=reconciler.urgent(),
                )
        except leases.LeaseLost:
            outcome = "lease_lost"
            log.info("reconciler.lease_lost", kind=reconciler.kind, uid=str(lease.uid))
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            if self._stopping:
                # A pass that outlived stop()'s grace meets the AWS clients and the database
                # being closed under it: an interruption, not a bug. Its lease expires and the
                # next owner starts over (a crash at any line is safe).
                outcome = "cancelled"
                log.info("reconciler.interrupted", kind=reconciler.kind, error=str(exc))
                return
            if database_unavailable(exc):
                # Postgres is down or restarting: not a linkplane bug, and nothing can be
                # written now (not even a condition). The lease expires; back off, and the
                # row is due again when it does (or at the next claim after recovery).
                outcome = "database_unavailable"
                log.warning(
                    "reconciler.database_unavailable",
                    kind=reconciler.kind,
                    uid=str(lease.uid),
                    error=str(exc.__cause__ or exc),
                )
                ended = time.monotonic()
                with contextlib.suppress(Exception):
                    async with self.db.transaction() as session:
                        await leases.release(
                            session,
                            reconciler.model,
                            lease,
                            delay_seconds=backoff(attempts + 1),
                            attempts=attempts + 1,
                        )
                return
            outcome = "error"
            log.exception(
                "reconciler.bug", kind=reconciler.kind, uid=str(lease.uid), error=str(exc)
            )
            BUGS.labels(reconciler.kind, type(exc).__name__).inc()
            ended = time.monotonic()
            delay = backoff(attempts + 1)
            with contextlib.suppress(Exception):
                # The resource says so itself (a condition, visible in Get and Watch), and is
                # retried with the same backoff as a failing AWS call, not in a tight loop.
                async with self.db.transaction() as session:
                    await _record_bug(session, reconciler, lease, exc, delay)
                    await leases.release(
                        session,
                        reconciler.model,
                        lease,
                        delay_seconds=delay,
                        attempts=attempts + 1,
                    )
        finally:
            heartbeat.cancel()
            IN_FLIGHT.labels(reconciler.kind).dec()
            RECONCILES.labels(reconciler.kind, outcome).inc()
            # The interval this process held the resource (CLOCK_MONOTONIC is system-wide on
            # Linux, so intervals from several processes on one machine compare): the
            # multi-process tests prove from these that no two owners ever overlapped.
            log.debug(
                "reconciler.pass",
                kind=reconciler.kind,
                uid=str(lease.uid),
                owner=self.owner,
                token=lease.token,
                started=started,
                ended=ended or time.monotonic(),
                outcome=outcome,
            )


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means Postgres cannot be reached now (by SQLSTATE and exception type,
    through ``database.classify``), as raised directly or as the domain ``Unavailable`` that
    ``Database.transaction`` turns it into."""
    if isinstance(exc, domain_errors.Unavailable) and exc.__cause__ is not None:
        return database.is_connection_failure(exc.__cause__)
    return database.is_connection_failure(exc)


async def _record_bug(
    session: database.Session,
    reconciler: Reconciler,
    lease: leases.Lease,
    exc: Exception,
    delay: float,
) -> None:
    """Put the unexpected exception on the resource as a condition (fenced by the lease)."""
    row = await leases.load(session, reconciler.model, lease)
    status = dict(row.status or {})
    progress.set_condition(
        status,
        BUG_CONDITION,
        False,
        BUG_REASON,
        f"linkplane hit an unexpected error ({type(exc).__name__}: {exc}); retrying in "
        f"{round(delay)} s",
        row.generation,
    )
    row.status = status
    row.revision += 1
    records.mark_updated(row)
    await changes.notify(session, kind=reconciler.kind, name=row.name, uid=str(row.uid))


class _TokenWaits:
    """How many of the engine's passes are asleep on rate-limit tokens; a pass falling asleep
    frees its slot, so the engine looks for more work at once."""

    def __init__(self, wake: asyncio.Event) -> None:
        self.count = 0
        self._wake = wake

    def asleep(self) -> None:
        self.count += 1
        self._wake.set()

    def awake(self) -> None:
        self.count -= 1


class _PassWaits:
    """One pass's observer (throttlers.TOKEN_WAITS): the pass is asleep while any of its tasks
    waits for a token (a pass may wait in several at once, e.g. batches gathered)."""

    def __init__(self, engine_waits: _TokenWaits) -> None:
        self._engine_waits = engine_waits
        self._waits = 0

    def waiting(self) -> None:
        self._waits += 1
        if self._waits == 1:
            self._engine_waits.asleep()

    def resumed(self) -> None:
        self._waits -= 1
        if self._waits == 0:
            self._engine_waits.awake()
