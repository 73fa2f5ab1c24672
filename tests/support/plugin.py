"""The fixtures every test gets, registered by the root conftest (`pytest_plugins`).

A fresh database on the test Postgres (`databases`) and an API-only server on it on a real
port with a channel to it, a `project` of each test's own (tests isolate by project, not by
truncating tables, so they can share one server), linkplane's log configuration, and the guard
that fails a test during which a reconciler logged `reconciler.bug`.

The database and the server are shared by every test a pytest worker runs, whatever its
package: pytest ends a package-scoped fixture with the package that defines it, and this
plugin's is the root. So nothing that reconciles may work on `database_url`: it would claim
the Services and Connections every other test published, against a simulator of its own
that has never heard of their subnets. A module or package that runs workers takes a
database of its own (`own_database_url`, or a fixture of its conftest, like
tests/reconciler's `plane_database_url`).
"""

from __future__ import annotations

import collections
import gc
import os
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import pytest

from linkplane.server import logs

if TYPE_CHECKING:
    import grpc

    from linkplane.server.runtime import Runtime
    from tests.support import databases

# The fixtures below import the server, the simulator (moto) and the database kit when first
# used, not here: under xdist the controller process loads this plugin too but runs no test,
# and those imports cost it ~4 s of one core before it starts any worker.


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reconciler_bug_expected: the test provokes `reconciler.bug` on purpose"
    )
    config.addinivalue_line(
        "markers",
        "heavy(seconds): a module among the suite's longest, with its rough time in a parallel"
        " run; the run starts the heavy modules first, longest first",
    )
    # Every test runs with linkplane's log configuration, so `no_reconciler_bugs` sees every
    # event. Info, not debug: a debug line per AWS call costs the event loop (and the simulator
    # thread sharing its GIL) more than the work itself.
    logs.configure("console", "info")
    # The suite runs in parallel (pytest-xdist, addopts): six workers, each with servers of
    # its own, share one Postgres (100 connections on CI's machine). Three pooled connections
    # (plus one overflow) per server is plenty for a test and keeps the whole run under that
    # limit: at four (plus four) per server, six workers reached 96-100 and were refused ("too
    # many clients") once in two runs; at three plus three the peak sampled at 20 Hz was 90-96,
    # at three plus one 71-79 (bench/README.md). Set in the environment, so servers started as
    # subprocesses get it too.
    os.environ.setdefault("LINKPLANE_DATABASE_POOL_SIZE", "3")
    os.environ.setdefault("LINKPLANE_DATABASE_POOL_OVERFLOW", "1")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (addopts): the whole suite on six workers on CI's two cores. Much of a test's
    time is waiting for time-scaled AWS delays, lease hand-offs and pacing, so three workers
    per core pays: 194-195 s at four, 183 s at five, 173-178 s at six on the 2-core machine
    (bench/README.md). More would put the Postgres connections (servers times pools) past
    100. A run of named files or folders is serial: starting the workers costs some 15 s of
    imports on two cores, more than most such runs take (`-n 4` asks for workers anyway)."""
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        return 0
    return min(6, 3 * (os.cpu_count() or 1))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy modules first, longest first, then the others by their number of tests.

    The parallel run hands out whole files (`--dist loadfile`) in collection order
    (`--no-loadscope-reorder`, addopts). xdist's own order, by number of tests, put the
    longest modules last, since each has one or two tests of a minute: the run ended with
    one worker on a 70 s module and the other core idle. Every worker collects the same
    items, so this order is the same on each, as xdist requires.
    """
    sizes = collections.Counter(_module(item) for item in items)

    def rank(item: pytest.Item) -> tuple[float, int]:
        heavy = item.get_closest_marker("heavy")
        if heavy is None:
            return 0.0, -sizes[_module(item)]
        if not isinstance(heavy.kwargs.get("seconds"), int | float):
            raise pytest.UsageError(f"{_module(item)}: write pytest.mark.heavy(seconds=...)")
        return -float(heavy.kwargs["seconds"]), -sizes[_module(item)]

    items.sort(key=rank)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep what imports and collection built (moto's, botocore's and linkplane's modules:
    most of the process's objects) out of the cyclic GC's full collections, as
    `linkplane-server serve` does once started; nothing a test creates is frozen. And collect
    the young generation less often: the suite keeps both cores busy, and the two
    together cut its CPU from 403 s to 326 s and its time from ~235 s to ~205 s (bench/README)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


@pytest.fixture(scope="session")
def database_server() -> Iterator[databases.DatabaseServer]:
    """The test Postgres with a migrated template, for as many fresh databases as tests need."""
    from tests.support import databases

    with databases.server_with_template() as server:
        yield server


@pytest.fixture(scope="package")
def database_url(database_server: databases.DatabaseServer) -> Iterator[str]:
    """A fresh, migrated database for API-only servers, shared by all of a worker's tests (the
    module docstring says why); dropped afterwards."""
    from tests.support import runtimes

    with database_server.fresh("linkplane_test") as url:
        runtimes.SHARED_DATABASE_URLS.add(url)
        try:
            yield url
        finally:
            runtimes.SHARED_DATABASE_URLS.discard(url)


@pytest.fixture(scope="module")
def own_database_url(database_server: databases.DatabaseServer) -> Iterator[str]:
    """A fresh database for one module that runs its own workers: no other worker may claim
    its rows or change its timing, and its workers reconcile none of the shared database's."""
    with database_server.fresh("linkplane_own") as url:
        yield url


@pytest.fixture(scope="package")
async def server(database_url: str) -> AsyncIterator[Runtime]:
    """An API-only server (it reconciles nothing) on the shared database."""
    from linkplane.server.config import Role, Settings
    from tests.support import runtimes

    settings = Settings(listen="127.0.0.1:0", shutdown_grace_seconds=1.0, role=Role.API)
    async with runtimes.running(settings, database_url, wait_for_feed=True) as runtime:
        yield runtime


@pytest.fixture(scope="package")
async def channel(server: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    from tests.support import runtimes

    async with runtimes.channel_to(server) as chan:
        yield chan


@pytest.fixture
def project() -> str:
    """A project id of this test's own, so tests never see each other's resources."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def no_reconciler_bugs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which any reconciler logged `reconciler.bug` (an unexpected exception).

    The engine survives such exceptions (the resource gets an `InternalError` condition and is
    retried), so without this a bug only shows as a slow or stuck test, if at all.
    """
    if request.node.get_closest_marker("reconciler_bug_expected") is not None:
        yield
        return
    bugs: list[str] = []

    def listen(event: MutableMapping[str, Any]) -> None:
        if event.get("event") == "reconciler.bug":
            bugs.append(f"{event.get('kind')} {event.get('uid')}: {event.get('error')}")

    logs.listeners.append(listen)
    try:
        yield
    finally:
        logs.listeners.remove(listen)
    if bugs:
        pytest.fail("reconciler.bug logged during the test:\n" + "\n".join(bugs))
