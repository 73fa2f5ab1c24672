"""Change notifications over Postgres LISTEN/NOTIFY, fanned out to many local subscribers.

Every committed change to a service or connection sends one NOTIFY on `linkplane_changes` in the
same transaction, so every replica hears about every change, whichever replica made it. The Watch
fan-out (one per process, api/watches.py) and the reconciler's wake-up subscribe here. When the
listening connection drops, subscribers receive `RESYNC` and must re-read what they follow:
notifications sent meanwhile are lost, and the reconciler's polling and the watchers' re-reads
cover that gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "linkplane_changes"
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Change:
    """One committed change: which kind of resource, its name and uid."""

    kind: str
    name: str
    uid: str


RESYNC = Change(kind="*", name="*", uid="*")


async def notify(session: AsyncSession, *, kind: str, name: str, uid: str) -> None:
    """Queue a notification; Postgres delivers it when (and only if) the transaction commits."""
    payload = json.dumps({"kind": kind, "name": name, "uid": uid})
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {
            "channel": CHANNEL,
            "payload": payload,
        },
    )


def asyncpg_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class ChangeFeed:
    """One LISTEN connection per process, fanned out to subscriber queues."""

    def __init__(self, url: str, *, reconnect_delay: float = 1.0) -> None:
        self._dsn = asyncpg_dsn(url)
        self._reconnect_delay = reconnect_delay
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="linkplane-change-feed")

    async def wait_connected(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(self, maxsize: int = 10_000) -> AsyncIterator[asyncio.Queue[Change]]:
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def _publish(self, change: Change) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                # A subscriber that cannot keep up re-reads everything instead of growing
                # without bound.
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait(RESYNC)

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            self._publish(Change(kind=data["kind"], name=data["name"], uid=data["uid"]))
        except (ValueError, KeyError):
            log.warning("change_feed.bad_payload", payload=payload[:200])

    async def _run(self) -> None:
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=5)
                await connection.add_listener(CHANNEL, self._on_notification)
                self._connected.set()
                self._publish(RESYNC)
                while not connection.is_closed():
                    await asyncio.sleep(1.0)
                    await connection.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change_feed.disconnected", error=str(exc))
            finally:
                self._connected.clear()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)
            await asyncio.sleep(self._reconnect_delay)
