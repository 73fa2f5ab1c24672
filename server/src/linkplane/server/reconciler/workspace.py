"""What every reconcile pass reaches for: the database, AWS clients, the rate limiter, timing.

Accounts are read from Postgres on each pass (they are small and rarely change), so a role ARN
updated through the API is used by the next pass without a restart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from linkplane.server.aws import calls, sessions, throttlers
from linkplane.server.domain import specs
from linkplane.server.reconciler import failures
from linkplane.server.storage import database, leases, models, records

RESYNC_GRID_CAP_SECONDS = 60.0


@dataclass
class Timing:
    """How soon to look again: fast while changing, slow once settled (drift detection)."""

    transitional_seconds: float
    resync_seconds: float

    def resync_delay(self, now: float | None = None) -> float:
        """Seconds until a settled resource's next look: the resync interval, rounded up to
        the next tick of a wall-clock grid a fifth of the interval wide (at most a minute).

        Settled Connections of one account then come due together, and their passes share
        one DescribeVpcEndpoints snapshot (``endpoint_snapshots.EndpointSnapshots``, fresh for
        the transitional interval) instead of each refreshing it: spread evenly, 250 settled
        connections of an account resyncing every 300 s asked for a snapshot every ~5 s
        (bench/idle.py). Only the routine resync is aligned; a poke or a spec change still
        wakes a resource at once."""
        grid = min(RESYNC_GRID_CAP_SECONDS, self.resync_seconds / 5)
        start = time.time() if now is None else now
        due = math.ceil((start + self.resync_seconds) / grid) * grid
        return due - start

    @property
    def retry(self) -> calls.RetryPolicy:
        """In-place retries of a transient AWS failure, paced by the transitional interval:
        3 retries, jittered up to a tenth of it doubling to the whole of it (with the default
        5 s: up to 0.5, 1 and 2 s; a simulator test at 0.2 s retries within milliseconds)."""
        return calls.RetryPolicy(
            retries=3,
            base_seconds=self.transitional_seconds / 10,
            cap_seconds=self.transitional_seconds,
        )


class Workspace:
    def __init__(
        self,
        *,
        db: database.Database,
        clients: sessions.AwsClients,
        limiter: throttlers.Limiter,
        timing: Timing,
        lease_seconds: float,
    ) -> None:
        self.db = db
        self.clients = clients
        self.limiter = limiter
        self.timing = timing
        self.lease_seconds = lease_seconds

    async def account(self, name: str) -> sessions.AccountRef:
        async with self.db.transaction() as session:
            row = await records.get(session, models.Account, name)
        if row is None:
            raise failures.PermanentError(
                "AccountNotRegistered", f"account {name} is no longer registered with linkplane"
            )
        spec = specs.account_from_json(row.spec)
        return sessions.AccountRef(
            account_id=row.aws_account_id,
            role_arn=spec.role_arn or None,
            external_id=spec.external_id or None,
        )

    def context(
        self,
        account: sessions.AccountRef,
        region: str,
        *,
        fence: Callable[[], Awaitable[None]] | None = None,
    ) -> calls.Context:
        return calls.Context(
            clients=self.clients,
            limiter=self.limiter,
            account=account,
            region=region,
            retry=self.timing.retry,
            fence=fence,
        )

    def fence(self, model: leases.Model, lease: leases.Lease) -> Callable[[], Awaitable[None]]:
        """The check a pass runs before each AWS mutation: still this lease's holder?

        It is a heartbeat (one fenced UPDATE): it raises ``LeaseLost`` if another worker has
        claimed the resource since (a worker paused past its lease, by SIGSTOP, a VM freeze or
        a long GC, learns it here before touching AWS), and otherwise renews the lease for a
        whole ``lease_seconds``, so nobody can claim the resource while the call it guards is
        being sent. AWS itself takes no fencing token: a pause longer than the lease *between*
        this check and the request is the window left, and it is one lease long, not a pass.
        """

        async def check() -> None:
            await leases.heartbeats(self.db).renew(model, lease, self.lease_seconds)

        return check
