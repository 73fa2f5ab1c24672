"""AWS rate-limit buckets kept in Postgres, so every replica draws from the same ones.

AWS counts an account's calls per (Region, action family) whichever process makes them; token
buckets kept per process let N workers together call N times too fast. Here each bucket is one
row of ``aws_rate_buckets``, and a call takes its token with **one statement** on an autocommit
connection (no BEGIN/COMMIT): an upsert that brings the row up to date (refill since ``stamp``,
at most ``capacity``), takes one token and returns the balance. The token is taken even when
the bucket is empty: the balance goes negative, and the caller sleeps until the refill has paid
for it (``-tokens / refill`` seconds). Concurrent callers queue in the order their statements
reach the row (its row lock serialises them), so a burst of callers across any number of
processes is paced exactly at the refill rate, each told its own wait.

Time is the database's (``statement_timestamp()``), one clock for every replica whatever their
hosts' clocks say. Capacity and refill come from the caller (``throttlers`` scales them by
``aws_time_scale``, so a simulator running faster than AWS is matched). The caller owns
nothing else: ``throttlers.SharedLimiter`` decides the buckets, sleeps and falls back to its
own in-process buckets if this store cannot be reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert

from linkplane.server.domain import ratelimits
from linkplane.server.storage import database, models

Bucket = models.RateBucket


def _refilled(excluded: Any) -> Any:
    """The row's tokens brought up to this statement's time, capped at the capacity."""
    elapsed = func.greatest(0.0, func.extract("epoch", func.statement_timestamp() - Bucket.stamp))
    return func.least(excluded.capacity, Bucket.tokens + elapsed * excluded.refill)


def _upsert(buckets: Sequence[ratelimits.BucketLimit], *, fresh_tokens: Any, tokens: Any) -> Any:
    """INSERT the rows (a never-seen bucket starts at ``fresh_tokens``) or UPDATE them to
    ``tokens(excluded)``; rows in key order so that concurrent callers lock them alike."""
    ordered = sorted(set(buckets))
    statement = insert(Bucket).values(
        [
            {
                "account_id": b.account,
                "region": b.region,
                "family": b.family,
                "capacity": b.capacity,
                "refill": b.refill,
                "tokens": fresh_tokens(b),
                "stamp": func.statement_timestamp(),
            }
            for b in ordered
        ]
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[Bucket.account_id, Bucket.region, Bucket.family],
        set_={
            "tokens": tokens(excluded),
            "capacity": excluded.capacity,
            "refill": excluded.refill,
            # Never backwards: a statement that waited for the row lock started before the
            # one that held it, and must not be credited that time twice.
            "stamp": func.greatest(Bucket.stamp, func.statement_timestamp()),
        },
    ).returning(Bucket.tokens, Bucket.refill)


class PostgresBuckets:
    """``throttlers.BucketStore`` on the process's database pool."""

    def __init__(self, db: database.Database) -> None:
        self.db = db

    async def reserve(self, buckets: Sequence[ratelimits.BucketLimit]) -> float:
        """Take one token from each bucket; the seconds to wait until all of them are paid."""
        statement = _upsert(
            buckets,
            fresh_tokens=lambda b: b.capacity - 1.0,
            tokens=lambda excluded: _refilled(excluded) - 1.0,
        )
        rows = await self._execute(statement)
        return max((max(0.0, -tokens / refill) for tokens, refill in rows), default=0.0)

    async def drain(
        self, buckets: Sequence[ratelimits.BucketLimit], backoff_seconds: float = 0.0
    ) -> None:
        """AWS throttled a call: empty the buckets (keeping any queue already in them) and push
        them ``backoff_seconds`` of refill further into deficit."""
        statement = _upsert(
            buckets,
            fresh_tokens=lambda b: -backoff_seconds * b.refill,
            tokens=lambda excluded: (
                func.least(_refilled(excluded), 0.0) - backoff_seconds * excluded.refill
            ),
        )
        await self._execute(statement)

    async def _execute(self, statement: Any) -> list[tuple[float, float]]:
        with database.translate_errors():
            async with self.db.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                result = await autocommit.execute(statement)
                return [(float(tokens), float(refill)) for tokens, refill in result.all()]
