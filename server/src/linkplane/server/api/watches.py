"""Watch streams: an initial snapshot, then every committed change, to many subscribers.

One `Hub` per process follows the change feed (Postgres LISTEN/NOTIFY, so changes made by any
replica arrive) and fans each change out to the streams watching that kind in that project:
it reads the changed rows once (one query per batch of notifications), converts each row once,
and hands the same `Resource` to every subscriber; the stream response for an event is built
and serialized once for all the streams that send it (`Hub.response`, `Hub.wire`). Each
subscriber then evaluates its own filter in memory (`matches`, the same semantics as the SQL of
storage/filtering.py) and emits ADDED/MODIFIED/DELETED against what it last sent. A change in
project Y is never handed to a subscriber of project X. 1,000 watchers cost one read per change,
not 1,000.

Streams never hold a pooled database connection while they wait or write: the initial listing
(and the re-listing after a feed gap) pages through the database in bounded chunks, each in its
own short transaction, and at most `SNAPSHOT_READERS` such pages are read at once process-wide,
so watchers opening en masse leave the pool to unary calls.

Ordering. A subscriber lists its snapshot while the hub may be delivering changes, and a change
the hub read *before* a snapshot page must not overwrite the newer state of that page. Hub reads
and snapshot pages therefore never overlap (a small readers-writer gate, the hub being the
writer) and carry the hub's `epoch`: a hub read increments it, a page records it. An update is
applied only when it was read after the page that listed its name; updates older than the
whole snapshot are dropped; the rare update whose order cannot be told (read between two pages,
for a name no page listed) is settled by reading that one name again.

After a feed gap (RESYNC) or when a subscriber falls too far behind, it re-lists everything it
follows and emits the differences, so no change is lost.

Why one module of ~640 lines: the hub, each stream's ADDED/MODIFIED/DELETED bookkeeping and the
in-memory filter keep one promise together (a subscriber sees exactly what the SQL filter of a
List would select, in commit order); split, that promise would be spread over three files.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import enum
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from linkplane.server.domain import errors, filters
from linkplane.server.storage import changes, database, filtering, records
from linkplane.v1 import common_pb2

log = structlog.get_logger(__name__)

# Rows per snapshot page: bounded memory and a short transaction per page.
SNAPSHOT_PAGE = 200
# Snapshot pages read at once, process-wide (the pool keeps the rest for unary calls).
SNAPSHOT_READERS = 4
# Resources a subscriber may have pending before it re-lists instead of queueing more.
SUBSCRIBER_BACKLOG = 10_000
# Stream sends per event-loop iteration (Turnstile).
SENDS_PER_TICK = 8
# Live responses kept for the subscribers that send the same event (Hub.response).
RESPONSE_CACHE = 1024

R = TypeVar("R")


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


@dataclass(frozen=True)
class WatchKind:
    """What the hub needs to read, convert and filter one kind of resource."""

    name: str  # the change-feed kind, e.g. "service"
    model: Any
    convert: Callable[[Any], Message]
    columns: Mapping[str, Any]  # filter field → column (storage/filtering.py)


@dataclass(frozen=True)
class Resource:
    """One row as every subscriber sees it: read once, converted once, shared."""

    name: str
    project: str
    message: Message
    values: Mapping[str, Any]  # filter field → the row's value (labels: the whole map)


@dataclass(frozen=True)
class Update:
    """The state of `name` as of the hub read numbered `epoch` (None: no such row)."""

    name: str
    epoch: int
    resource: Resource | None


@dataclass(frozen=True)
class Resync:
    """Re-list everything: notifications may have been lost."""


@dataclass(frozen=True)
class Failed:
    """The hub could not read a change this subscriber needed; the stream ends with `error`
    (a DomainError such as UNAVAILABLE, or a bug, which the RPC wrapper reports as one)."""

    error: Exception


Item = Update | Resync | Failed


def resource_of(kind: WatchKind, row: Any) -> Resource:
    return Resource(
        name=row.name,
        project=row.project,
        message=kind.convert(row),
        values={field: getattr(row, column.key) for field, column in kind.columns.items()},
    )


def project_of(name: str) -> str:
    """`projects/{project}/…` → project."""
    parts = name.split("/", 2)
    return parts[1] if len(parts) > 2 and parts[0] == "projects" else ""


class Gate:
    """Readers-writer exclusion on one event loop: snapshot pages share, hub reads exclude.

    A waiting writer holds new readers back, so a stream of opening watchers cannot delay
    change delivery indefinitely.
    """

    def __init__(self) -> None:
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._event = asyncio.Event()

    async def _wait(self) -> None:
        await self._event.wait()

    def _notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while self._writing or self._writers_waiting:
            await self._wait()
        self._readers += 1
        try:
            yield
        finally:
            self._readers -= 1
            if self._readers == 0:
                self._notify()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        self._writers_waiting += 1
        try:
            while self._writing or self._readers:
                await self._wait()
        finally:
            self._writers_waiting -= 1
            self._notify()
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
            self._notify()


class Turnstile:
    """Lets at most `per_tick` stream sends start per event-loop iteration.

    A change concerns every subscriber at once; without this, a thousand sends would sit in
    the loop's ready queue ahead of a unary call's next step. Through the turnstile each loop
    iteration carries a bounded slice of fan-out work, so unary calls keep their latency while
    the streams absorb any shortfall of CPU (they catch up, coalesced, when it returns).
    """

    def __init__(self, per_tick: int, busy: Callable[[], bool] | None = None) -> None:
        self.per_tick = per_tick
        # While `busy()` (unary calls in flight), one send per iteration: the calls come first.
        self.busy = busy or (lambda: False)
        self._passed = 0
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._scheduled = False

    def admit(self, wake: Callable[[], None]) -> None:
        """Call `wake` when its turn comes (in a later loop iteration)."""
        self._queue.append(wake)
        self._schedule()

    async def wait(self) -> None:
        """Return now if this iteration has turns left, else when a later one has."""
        self._schedule()
        if self._passed < self._allowance() and not self._queue:
            self._passed += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def go() -> None:
            if not turn.done():
                turn.set_result(None)

        self.admit(go)
        await turn

    def _allowance(self) -> int:
        return 1 if self.busy() else self.per_tick

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self._scheduled = False
        self._passed = 0
        allowance = self._allowance()
        while self._queue and self._passed < allowance:
            self._queue.popleft()()
            self._passed += 1
        if self._queue:
            self._schedule()


@dataclass(eq=False)
class Subscription:
    """One stream's place in the hub: what it follows and what it has yet to send.

    Pending updates are kept per name, the newest replacing an older one: a stream that falls
    behind sends each resource's latest state rather than every intermediate one (what a
    re-read at send time gave before), and its backlog is bounded by the resources it follows.
    """

    kind: WatchKind
    project: str
    turnstile: Turnstile
    pending: dict[str, Update] = field(default_factory=dict)
    interrupt: Resync | Failed | None = None
    _waiter: asyncio.Future[None] | None = None
    _admitted: bool = False

    def offer(self, item: Item) -> None:
        if isinstance(item, Failed):
            self.interrupt = item
            self.pending.clear()
        elif isinstance(item, Resync):
            # The re-listing happens after this, so it is newer than anything pending.
            if not isinstance(self.interrupt, Failed):
                self.interrupt = item
            self.pending.clear()
        elif item.name in self.pending or len(self.pending) < SUBSCRIBER_BACKLOG:
            self.pending[item.name] = item
        else:
            # Too far behind on too many resources: re-list instead of growing without bound.
            self.offer(Resync())
            return
        if self._waiter is not None and not self._admitted:
            self._admitted = True
            self.turnstile.admit(self._wake)

    def _wake(self) -> None:
        self._admitted = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> Item:
        """The next thing to act on, when the turnstile gives this stream its turn."""
        if self.interrupt is None and self.pending:
            await self.turnstile.wait()
        while True:
            if self.interrupt is not None:
                item: Item = self.interrupt
                self.interrupt = None
                return item
            if self.pending:
                return self.pending.pop(next(iter(self.pending)))
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class Hub:
    """The process's fan-out of committed changes to its Watch streams."""

    def __init__(
        self,
        db: database.Database,
        feed: changes.ChangeFeed,
        *,
        page_size: int = SNAPSHOT_PAGE,
        snapshot_readers: int = SNAPSHOT_READERS,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.feed = feed
        self.page_size = page_size
        self.epoch = 0
        self.gate = Gate()
        self.snapshot_slots = asyncio.Semaphore(snapshot_readers)
        self.turnstile = Turnstile(SENDS_PER_TICK, busy)
        self._kinds: dict[str, WatchKind] = {}
        self._subscribers: dict[tuple[str, str], set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._responses: collections.OrderedDict[tuple[Any, int], tuple[Message, Any]] = (
            collections.OrderedDict()
        )
        # The responses of `_responses` by id, and the bytes of those already serialized.
        self._shared: dict[int, Any] = {}
        self._wire: dict[int, bytes] = {}

    def response(self, event_type: Any, message: Message, build: Callable[[Any, Any], R]) -> R:
        """The stream response for a live event, built once for all the subscribers that send
        it (the same message object reaches them all); its event_time is when it was built."""
        key = (event_type, id(message))
        cached = self._responses.get(key)
        if cached is not None and cached[0] is message:
            response: R = cached[1]
            return response
        built = build(event_type, message)
        # The entry keeps `message` alive, so its id cannot be reused while cached.
        self._responses[key] = (message, built)
        self._shared[id(built)] = built
        while len(self._responses) > RESPONSE_CACHE:
            _, (_, old) = self._responses.popitem(last=False)
            self._shared.pop(id(old), None)
            self._wire.pop(id(old), None)
        return built

    def wire(self, response: Any, serialize: Callable[[Any], bytes]) -> bytes:
        """`response` serialized: a live response shared by many streams once for them all
        (the server's response serializer for streams, api/boundary.py), anything else as
        usual. Shared responses are never changed after `response` built them."""
        key = id(response)
        if self._shared.get(key) is not response:
            return serialize(response)
        data = self._wire.get(key)
        if data is None:
            data = self._wire[key] = serialize(response)
        return data

    @property
    def subscribers(self) -> int:
        return sum(len(group) for group in self._subscribers.values())

    @contextlib.contextmanager
    def subscribe(self, kind: WatchKind, project: str) -> Iterator[Subscription]:
        subscription = Subscription(kind=kind, project=project, turnstile=self.turnstile)
        self._kinds[kind.name] = kind
        self._subscribers.setdefault((kind.name, project), set()).add(subscription)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="linkplane-watch-hub")
        try:
            yield subscription
        finally:
            group = self._subscribers.get((kind.name, project))
            if group is not None:
                group.discard(subscription)
                if not group:
                    del self._subscribers[(kind.name, project)]
            if not self._subscribers and self._task is not None:
                # Nobody watches: stop following the feed (the next subscriber restarts it).
                self._task.cancel()
                self._task = None

    async def _run(self) -> None:
        async with self.feed.subscribe() as queue:
            while True:
                batch = [await queue.get()]
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        batch.append(queue.get_nowait())
                try:
                    await self._dispatch(batch)
                except Exception as exc:
                    # A bug must not silently stop every stream of the process: they end with
                    # it (INTERNAL, logged by the RPC wrapper) and their clients re-watch.
                    log.exception("watch.hub_bug", error=str(exc))
                    for group in self._subscribers.values():
                        for subscription in group:
                            subscription.offer(Failed(exc))

    async def _dispatch(self, batch: list[changes.Change]) -> None:
        if any(change == changes.RESYNC for change in batch):
            for group in self._subscribers.values():
                for subscription in group:
                    subscription.offer(Resync())
            return
        wanted: dict[str, set[str]] = {}
        for change in batch:
            if (change.kind, project_of(change.name)) in self._subscribers:
                wanted.setdefault(change.kind, set()).add(change.name)
        if not wanted:
            return
        try:
            async with self.gate.exclusive():
                self.epoch += 1
                epoch = self.epoch
                found = await self._read(wanted)
        except errors.DomainError as error:
            # The database failed this read: the streams that needed it end with the error
            # (UNAVAILABLE) and their clients re-watch, as they would after any stream error.
            log.warning("watch.read_failed", error=error.message)
            for kind_name, names in wanted.items():
                for project in {project_of(name) for name in names}:
                    for subscription in self._subscribers.get((kind_name, project), ()):
                        subscription.offer(Failed(error))
            return
        for kind_name, names in wanted.items():
            for name in sorted(names):
                resource = found.get((kind_name, name))
                update = Update(name=name, epoch=epoch, resource=resource)
                for subscription in self._subscribers.get((kind_name, project_of(name)), ()):
                    subscription.offer(update)

    async def _read(self, wanted: Mapping[str, set[str]]) -> dict[tuple[str, str], Resource]:
        """Every changed row of the batch: one query per kind, one transaction."""
        found: dict[tuple[str, str], Resource] = {}
        async with self.db.transaction() as session:
            for kind_name, names in wanted.items():
                kind = self._kinds[kind_name]
                for row in await records.named(session, kind.model, names):
                    found[(kind_name, row.name)] = resource_of(kind, row)
        return found


class Listing(enum.Enum):
    """How a listing is emitted: the first one as EXISTING events (or not at all, when the
    client asked for no initial state), a re-listing after a gap as differences."""

    EXISTING = "existing"
    SILENT = "silent"
    DIFFERENCES = "differences"


@dataclass
class _Synced:
    """The epochs of the last (re-)listing: which page saw which name, and when."""

    first: int
    last: int
    page_of: dict[str, int]


class Watcher:
    """One Watch stream: what it follows, and what it has sent."""

    def __init__(
        self,
        *,
        hub: Hub,
        kind: WatchKind,
        project: str,
        node: filters.Node | None,
    ) -> None:
        self.hub = hub
        self.kind = kind
        self.project = project
        self.node = node
        self.sent: dict[str, Message] = {}
        self._synced: _Synced | None = None
        # Compiled once up front, so an uncompilable filter is INVALID_ARGUMENT before
        # anything is streamed.
        filtering.compile_filter(node, kind.columns)

    async def responses(
        self, *, send_initial: bool, build: Callable[[Any, Any], R]
    ) -> AsyncIterator[R]:
        """`events` as stream responses made by `build(event_type, message)`; a live event's
        response is built once per process, not once per subscriber."""
        live = {
            common_pb2.EVENT_TYPE_ADDED,
            common_pb2.EVENT_TYPE_MODIFIED,
            common_pb2.EVENT_TYPE_DELETED,
        }
        async for event_type, message in self.events(send_initial=send_initial):
            if event_type in live:
                yield self.hub.response(event_type, message, build)
            else:
                yield build(event_type, message)

    async def events(self, *, send_initial: bool) -> AsyncIterator[tuple[Any, Any]]:
        with self.hub.subscribe(self.kind, self.project) as subscription:
            async for event in self._sync(Listing.EXISTING if send_initial else Listing.SILENT):
                yield event
            if send_initial:
                yield common_pb2.EVENT_TYPE_SYNCED, None
            while True:
                item = await subscription.next()
                if isinstance(item, Failed):
                    raise item.error
                if isinstance(item, Resync):
                    async for event in self._sync(Listing.DIFFERENCES):
                        yield event
                    continue
                update = await self._settle(item)
                if update is None:
                    continue
                current = {}
                if update.resource is not None and matches(self.node, update.resource.values):
                    current[update.name] = update.resource.message
                for event in self._diff(current, scope={update.name}):
                    yield event

    async def _settle(self, update: Update) -> Update | None:
        """The update if it is newer than what the last listing showed, else None."""
        synced = self._synced
        if synced is None:
            return update
        if update.epoch > synced.last:
            # Epochs only grow: every later update is newer than the whole listing too.
            self._synced = None
            return update
        page = synced.page_of.get(update.name)
        if page is not None:
            return update if update.epoch > page else None
        if update.epoch <= synced.first:
            return None
        # Read between two pages, for a name no page listed: which is newer cannot be told,
        # so look again.
        async with self._snapshot_read() as epoch, self.hub.db.transaction() as session:
            row = await records.get_in_project(session, self.kind.model, self.project, update.name)
            resource = resource_of(self.kind, row) if row is not None else None
        return Update(name=update.name, epoch=epoch, resource=resource)

    @contextlib.asynccontextmanager
    async def _snapshot_read(self) -> AsyncIterator[int]:
        async with self.hub.snapshot_slots, self.hub.gate.shared():
            yield self.hub.epoch

    async def _sync(self, listing: Listing) -> AsyncIterator[tuple[int, Message | None]]:
        """List everything this stream follows, page by page, and emit it as `listing` says."""
        listed: set[str] = set()
        page_of: dict[str, int] = {}
        epochs: list[int] = []
        after: str | None = None
        while True:
            async with self._snapshot_read() as epoch, self.hub.db.transaction() as session:
                rows, more = await records.page(
                    session,
                    self.kind.model,
                    project=self.project,
                    node=self.node,
                    columns=self.kind.columns,
                    after=after,
                    limit=self.hub.page_size,
                )
                page = [(row.name, self.kind.convert(row)) for row in rows]
            # The connection and the gate are released before anything is written to the
            # client, however slow it reads.
            epochs.append(epoch)
            await self.hub.turnstile.wait()
            for name, message in page:
                listed.add(name)
                page_of[name] = epoch
                if listing is Listing.SILENT:
                    self.sent[name] = message
                elif listing is Listing.EXISTING:
                    self.sent[name] = message
                    yield common_pb2.EVENT_TYPE_EXISTING, message
                else:
                    for event in self._diff({name: message}, scope={name}):
                        yield event
            if not more or not page:
                break
            after = page[-1][0]
        for name in [name for name in self.sent if name not in listed]:
            yield common_pb2.EVENT_TYPE_DELETED, self.sent.pop(name)
        self._synced = _Synced(first=epochs[0], last=epochs[-1], page_of=page_of)

    def _diff(
        self, current: Mapping[str, Message], scope: set[str]
    ) -> list[tuple[int, Message | None]]:
        events: list[tuple[int, Message | None]] = []
        for name, message in current.items():
            previous = self.sent.get(name)
            if previous is None:
                events.append((common_pb2.EVENT_TYPE_ADDED, message))
            elif getattr(previous, "etag", None) != getattr(message, "etag", None):
                events.append((common_pb2.EVENT_TYPE_MODIFIED, message))
            self.sent[name] = message
        for name in scope:
            if name in self.sent and name not in current:
                events.append((common_pb2.EVENT_TYPE_DELETED, self.sent.pop(name)))
        return events


def matches(node: filters.Node | None, values: Mapping[str, Any]) -> bool:
    """Whether a resource with these filter values passes `node`, exactly as the SQL of
    storage/filtering.py decides: SQL's three-valued logic, where a comparison with NULL is
    unknown and unknown does not match."""
    return node is None or _evaluate(node, values) is True


def _evaluate(node: filters.Node, values: Mapping[str, Any]) -> bool | None:
    if isinstance(node, filters.AllOf | filters.AnyOf):
        results = [_evaluate(term, values) for term in node.terms]
        decisive = isinstance(node, filters.AnyOf)  # OR: any True decides; AND: any False
        if decisive in results:
            return decisive
        return None if None in results else not decisive
    if isinstance(node, filters.Not):
        inner = _evaluate(node.term, values)
        return None if inner is None else not inner
    if node.field.startswith("labels."):
        labels = values.get("labels") or {}
        label = labels.get(node.field.removeprefix("labels."))
        text = None if label is None else str(label)
        # A missing label compares as "", as in SQL (IS NOT DISTINCT FROM / IS NULL OR = '').
        equal = (text is None or text == "") if node.value == "" else text == node.value
        return not equal if node.negated else equal
    if node.field not in values:
        return False
    value = values[node.field]
    if value is None:
        return None
    if node.operator in filters.ORDERING_OPERATORS or isinstance(value, datetime.datetime):
        timed = isinstance(value, datetime.datetime)
        wanted: Any = filters.timestamp(node) if timed else node.value
        return bool(filters.comparator(node)(value, wanted))
    return bool(value != node.value) if node.negated else bool(value == node.value)
