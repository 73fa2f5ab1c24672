"""AWS rate-limit buckets kept in Postgres, so every replica draws from the same ones.

AWS counts an account's calls per (Region, action family) whichever process makes them; token
buckets kept per process let N workers together call N times too fast. Here each bucket is one
row of ``aws_rate_buckets``, and a call takes its token with **one statement** on an autocommit
connection (no BEGIN/COMMIT; built once and sent through asyncpg, storage/driver.py): an upsert
that brings the row up to date (refill since ``stamp``, at most ``capacity``), takes one token
and returns the balance. The token is taken even when
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

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Float, bindparam, func
from sqlalchemy.dialects.postgresql import insert

from linkplane.server.domain import ratelimits
from linkplane.server.storage import database, driver, models

Bucket = models.RateBucket


def _refilled(excluded: Any) -> Any:
    """The row's tokens brought up to this statement's time, capped at the capacity."""
    elapsed = func.greatest(0.0, func.extract("epoch", func.statement_timestamp() - Bucket.stamp))
    return func.least(excluded.capacity, Bucket.tokens + elapsed * excluded.refill)


def _reserved(excluded: Any) -> Any:
    return _refilled(excluded) - 1.0


def _drained(excluded: Any) -> Any:
    backoff = bindparam("backoff_seconds", type_=Float())
    return func.least(_refilled(excluded), 0.0) - backoff * excluded.refill


@functools.cache
def _upsert(count: int, tokens: Callable[[Any], Any]) -> driver.Statement:
    """INSERT `count` rows (a never-seen bucket starts at its `fresh_{i}` tokens) or UPDATE
    them to ``tokens(excluded)``, returning each one's balance. Built and compiled once per
    (count, rule): a call makes it every time it calls AWS."""

    def value(name: str, i: int, column: Any) -> Any:
        return bindparam(f"{name}_{i}", type_=column.type)

    statement = insert(Bucket).values(
        [
            {
                "account_id": value("account_id", i, Bucket.account_id),
                "region": value("region", i, Bucket.region),
                "family": value("family", i, Bucket.family),
                "capacity": value("capacity", i, Bucket.capacity),
                "refill": value("refill", i, Bucket.refill),
                "tokens": value("fresh", i, Bucket.tokens),
                "stamp": func.statement_timestamp(),
            }
            for i in range(count)
        ]
    )
    excluded = statement.excluded
    return driver.Statement.of(
        statement.on_conflict_do_update(
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
    )


class PostgresBuckets:
    """``throttlers.BucketStore`` on the process's database pool."""

    def __init__(self, db: database.Database) -> None:
        self.db = db

    async def reserve(self, buckets: Sequence[ratelimits.BucketLimit]) -> float:
        """Take one token from each bucket; the seconds to wait until all of them are paid."""
        rows = await self._execute(_reserved, buckets, lambda b: b.capacity - 1.0, {})
        return max((max(0.0, -tokens / refill) for tokens, refill in rows), default=0.0)

    async def drain(
        self, buckets: Sequence[ratelimits.BucketLimit], backoff_seconds: float = 0.0
    ) -> None:
        """AWS throttled a call: empty the buckets (keeping any queue already in them) and push
        them ``backoff_seconds`` of refill further into deficit."""
        await self._execute(
            _drained,
            buckets,
            lambda b: -backoff_seconds * b.refill,
            {"backoff_seconds": backoff_seconds},
        )

    async def _execute(
        self,
        tokens: Callable[[Any], Any],
        buckets: Sequence[ratelimits.BucketLimit],
        fresh: Callable[[ratelimits.BucketLimit], float],
        values: dict[str, Any],
    ) -> list[tuple[float, float]]:
        # Rows in key order, so that concurrent callers lock them alike.
        ordered = sorted(set(buckets))
        for i, b in enumerate(ordered):
            values |= {
                f"account_id_{i}": b.account,
                f"region_{i}": b.region,
                f"family_{i}": b.family,
                f"capacity_{i}": b.capacity,
                f"refill_{i}": b.refill,
                f"fresh_{i}": fresh(b),
            }
        async with driver.autocommit(self.db) as connection:
            rows = await connection.rows(_upsert(len(ordered), tokens), values)
        return [(float(row["tokens"]), float(row["refill"])) for row in rows]
