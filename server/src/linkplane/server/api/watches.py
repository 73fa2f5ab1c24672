"""Watch streams: an initial snapshot, then every committed change, to many subscribers.

Each stream subscribes to the process's change feed (Postgres LISTEN/NOTIFY, so changes made
by any replica arrive), re-reads the changed row, and emits it if it matches the stream's
filter and its etag differs from what this stream last sent. After a feed reconnect (RESYNC)
the stream re-reads everything it follows and emits the differences, so no change is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from sqlalchemy import select

from linkplane.server.domain import filters
from linkplane.server.storage import changes, database, filtering
from linkplane.v1 import common_pb2

KEEPALIVE_SECONDS = 30.0


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


class Watcher:
    def __init__(
        self,
        *,
        db: database.Database,
        feed: changes.ChangeFeed,
        kind: str,
        model: Any,
        project: str,
        node: filters.Node | None,
        columns: Mapping[str, Any],
        convert: Callable[[Any], Any],
    ) -> None:
        self.db = db
        self.feed = feed
        self.kind = kind
        self.model = model
        self.project = project
        self.node = node
        self.columns = columns
        self.convert = convert
        self.sent: dict[str, Message] = {}

    async def _read(self, name: str | None = None) -> dict[str, Message]:
        query = select(self.model).where(self.model.project == self.project)
        condition = filtering.compile_filter(self.node, self.columns)
        if condition is not None:
            query = query.where(condition)
        if name is not None:
            query = query.where(self.model.name == name)
        async with self.db.transaction() as session:
            rows = (await session.execute(query.order_by(self.model.name))).scalars().all()
            return {row.name: self.convert(row) for row in rows}

    def _diff(
        self, current: Mapping[str, Message], scope: set[str] | None
    ) -> list[tuple[int, Message]]:
        events: list[tuple[int, Message]] = []
        for name, message in current.items():
            previous = self.sent.get(name)
            if previous is None:
                events.append((common_pb2.EVENT_TYPE_ADDED, message))
            elif getattr(previous, "etag", None) != getattr(message, "etag", None):
                events.append((common_pb2.EVENT_TYPE_MODIFIED, message))
            self.sent[name] = message
        for name in list(scope if scope is not None else self.sent):
            if name in self.sent and name not in current:
                events.append((common_pb2.EVENT_TYPE_DELETED, self.sent.pop(name)))
        return events

    async def events(self, *, send_initial: bool) -> AsyncIterator[tuple[Any, Any]]:
        async with self.feed.subscribe() as queue:
            snapshot = await self._read()
            self.sent = dict(snapshot)
            if send_initial:
                for message in snapshot.values():
                    yield common_pb2.EVENT_TYPE_EXISTING, message
                yield common_pb2.EVENT_TYPE_SYNCED, None
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    # Cheap insurance against a missed notification: compare everything.
                    change = changes.RESYNC
                if change is changes.RESYNC or change == changes.RESYNC:
                    for event in self._diff(await self._read(), scope=None):
                        yield event
                elif change.kind == self.kind and change.name.startswith(
                    f"projects/{self.project}/"
                ):
                    current = await self._read(change.name)
                    for event in self._diff(current, scope={change.name}):
                        yield event
