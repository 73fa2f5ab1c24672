"""The typed clients against the real server: a full linkplane (API and reconcilers) on a database
of this module's own, reconciling against the AWS simulator over HTTP.

tests/client/test_client.py drives the clients against a scripted fake, which alone can inject
UNAVAILABLE, break watches and count retries. The fake is a second implementation of the
contract, though, and can drift from the server: here the behaviour a user relies on (operations
and their progress, paging and filters, update masks, deletes, errors and their details, request
id replays, watches, failed operations) is checked against the server itself, for the asyncio
and the blocking client. The blocking `Client` runs in a worker thread (`asyncio.to_thread`):
on the event loop's thread it would block the server it talks to.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from linkplane.client import AsyncClient, Backoff, Client, ClientConfig, errors
from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from linkplane.v1 import common_pb2, service_pb2
from tests.support import runtimes, simulator
from tests.support.api import Api
from tests.support.simulator import CONSUMER, PROVIDER, TIME_SCALE
from tests.support.specs import managed_service

Service = service_pb2.Service
POLL = Backoff(initial=0.05, maximum=0.2, multiplier=1.5, jitter=0.1)
"""Operation polls and watch reconnects at the simulator's pace (AWS's delays are milliseconds
at TIME_SCALE), so the clients' own waits are what each test waits with."""
DONE_WITHIN = 30.0
"""Seconds an operation may take: generous for a loaded machine, seconds in practice."""


@pytest.fixture(scope="module")
def sim() -> Iterator[sim_server.SimHandle]:
    yield from simulator.running(TIME_SCALE)


@pytest.fixture(scope="module")
def networks(sim: sim_server.SimHandle) -> dict[str, dict[str, Any]]:
    return simulator.seed_networks(sim, (PROVIDER, CONSUMER))


@pytest.fixture(scope="module")
async def plane(sim: sim_server.SimHandle, own_database_url: str) -> AsyncIterator[Runtime]:
    """A full server for this module; its change feed listens before the first watch."""
    settings = runtimes.worker_settings(sim, time_scale=TIME_SCALE)
    async with runtimes.running(settings, own_database_url, wait_for_feed=True) as runtime:
        yield runtime


@pytest.fixture
def config(plane: Runtime) -> ClientConfig:
    return ClientConfig(
        address=f"127.0.0.1:{plane.port}",
        default_timeout=10.0,
        poll_backoff=POLL,
        watch_backoff=POLL,
    )


@pytest.fixture
async def parent(plane: Runtime, project: str) -> str:
    """This test's project, with the provider and consumer accounts registered in it."""
    async with runtimes.channel_to(plane) as channel:
        await Api(channel).register(project, PROVIDER, CONSUMER)
    return f"projects/{project}"


@pytest.fixture
async def aclient(config: ClientConfig) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(config) as client:
        yield client


def service_spec(
    parent: str, networks: dict[str, dict[str, Any]], **labels: str
) -> service_pb2.Service:
    """A Service with a managed NLB in the provider's seeded network, labelled `labels`."""
    spec = managed_service(parent.removeprefix("projects/"), networks)
    spec.labels.update(labels)
    return spec


async def published(
    aclient: AsyncClient, parent: str, networks: dict[str, dict[str, Any]], service_id: str
) -> service_pb2.Service:
    """A Service published and ACTIVE."""
    op = await aclient.publish_service(
        parent=parent, service=service_spec(parent, networks), service_id=service_id
    )
    return await op.result(timeout=DONE_WITHIN)


# -- operations ------------------------------------------------------------------------------


async def test_publish_reports_progress_on_changes_and_returns_the_active_service(
    aclient: AsyncClient, parent: str, networks: dict[str, dict[str, Any]]
) -> None:
    op = await aclient.publish_service(
        parent=parent, service=service_spec(parent, networks), service_id="payments"
    )
    assert op.name.startswith("operations/")
    assert op.metadata.target == f"{parent}/services/payments"
    assert op.metadata.verb == "publish"
    seen: list[tuple[str, str, bool]] = []

    def on_progress(metadata: common_pb2.OperationMetadata, resource: Any) -> None:
        seen.append((metadata.progress_message, Service.State.Name(resource.state), op.done))

    service = await op.result(timeout=DONE_WITHIN, on_progress=on_progress)
    assert isinstance(service, service_pb2.Service)
    assert service.name == f"{parent}/services/payments"
    assert service.state == Service.STATE_ACTIVE
    assert service.service_name.startswith("com.amazonaws.vpce."), service.service_name
    assert op.done
    assert seen[0][1:] == ("STATE_CREATING", False), seen
    assert seen[-1] == ("active", "STATE_ACTIVE", True), seen
    # The client polls many times while the reconciler works (its poll backoff starts at 50 ms);
    # it reports a change of progress message, state or completion only.
    assert all(before != after for before, after in itertools.pairwise(seen)), seen


async def test_get_and_list_operations(
    aclient: AsyncClient, parent: str, networks: dict[str, dict[str, Any]]
) -> None:
    op, other = [
        await aclient.publish_service(
            parent=parent, service=service_spec(parent, networks), service_id=service_id
        )
        for service_id in ("ops", "other")
    ]
    fetched = await aclient.get_operation(name=op.name)
    assert fetched.name == op.name
    assert fetched.metadata.target == f"{parent}/services/ops"
    assert fetched.metadata.verb == "publish"
    target = f'target = "{parent}/services/ops"'
    assert [o.name async for o in aclient.list_operations(filter=target)] == [op.name]
    service = await fetched.result(timeout=DONE_WITHIN)
    assert isinstance(service, service_pb2.Service)
    assert service.state == Service.STATE_ACTIVE
    finished = [o async for o in aclient.list_operations(filter=f"{target} AND done = true")]
    assert [(o.name, o.done) for o in finished] == [(op.name, True)]
    await other.result(timeout=DONE_WITHIN)


async def test_blocking_client_publishes_and_reports_progress(
    config: ClientConfig, parent: str, networks: dict[str, dict[str, Any]]
) -> None:
    def publish() -> tuple[service_pb2.Service, list[int]]:
        with Client(config) as client:
            op = client.publish_service(
                parent=parent, service=service_spec(parent, networks), service_id="blocking"
            )
            assert op.metadata.target == f"{parent}/services/blocking"
            states: list[int] = []
            result = op.result(timeout=DONE_WITHIN, on_progress=lambda m, r: states.append(r.state))
            return result, states

    service, states = await asyncio.to_thread(publish)
    assert service.state == Service.STATE_ACTIVE
    assert states[0] == Service.STATE_CREATING
    assert states[-1] == Service.STATE_ACTIVE


async def test_a_failed_publish_raises_operation_failed_with_the_real_reason(
    aclient: AsyncClient, parent: str, networks: dict[str, dict[str, Any]]
) -> None:
    spec = service_spec(parent, networks)
    # The consumer's subnets: the provider account cannot place a load balancer in them.
    spec.load_balancer.managed.subnet_ids[:] = networks[CONSUMER]["subnet_ids"]
    op = await aclient.publish_service(parent=parent, service=spec, service_id="elsewhere")
    with pytest.raises(errors.OperationFailed) as caught:
        await op.result(timeout=DONE_WITHIN)
    failure = caught.value
    assert failure.operation_name == op.name
    assert isinstance(failure.error, errors.FailedPrecondition), failure.error
    assert failure.reason == "AWS_ERROR"
    assert failure.metadata == {"action": "CreateLoadBalancer", "code": "InvalidSubnetID.NotFound"}
    assert any(s in failure.message for s in networks[CONSUMER]["subnet_ids"]), failure.message
    service = await aclient.get_service(name=f"{parent}/services/elsewhere")
    assert service.state == Service.STATE_FAILED


# -- reading, changing, deleting -------------------------------------------------------------


async def test_list_follows_pages_and_filters(
    aclient: AsyncClient, parent: str, networks: dict[str, dict[str, Any]]
) -> None:
    teams = {"s0": "orders", "s1": "search", "s2": "orders", "s3": "orders", "s4": "search"}
    ops = [
        await aclient.publish_service(
            parent=parent, service=service_spec(parent, networks, team=team), service_id=sid
        )
        for sid, team in teams.items()
    ]
    names = [f"{parent}/services/{sid}" for sid in teams]
    assert sorted([s.name async for s in aclient.list_services(parent=parent, page_size=2)]) == (
        names
    )
    pages = [p async for p in aclient.list_services(parent=parent, page_size=2).pages()]
    assert [len(p.items) for p in pages] == [2, 2, 1]
    orders = aclient.list_services(parent=parent, filter="labels.team = orders", page_size=2)
    assert sorted([s.name async for s in orders]) == [names[0], names[2], names[3]]
    assert (await aclient.get_service(name=names[1])).labels["team"] == "search"
    # The server goes on reconciling after the test; let it settle so no later test waits on it.
    await asyncio.gather(*(op.result(timeout=DONE_WITHIN) for op in ops))


@pytest.mark.parametrize(
    "mask", ["display_name,labels", ["display_name", "labels"]], ids=["comma-string", "list"]
)
async def test_update_changes_only_the_masked_fields_and_delete_returns_none(
    aclient: AsyncClient,
    parent: str,
    networks: dict[str, dict[str, Any]],
    mask: str | list[str],
) -> None:
    service = await published(aclient, parent, networks, "masked")
    changed = Service(
        name=service.name,
        display_name="Payments",
        labels={"team": "payments"},
        allowed_principals=["999999999999"],  # outside the mask: must stay as published
    )
    op = await aclient.update_service(service=changed, update_mask=mask)
    updated = await op.result(timeout=DONE_WITHIN)
    assert (updated.display_name, dict(updated.labels)) == ("Payments", {"team": "payments"})
    assert list(updated.allowed_principals) == list(service.allowed_principals)
    deleted = await aclient.delete_service(name=service.name)
    assert await deleted.result(timeout=DONE_WITHIN) is None
    with pytest.raises(errors.NotFound):
        await aclient.get_service(name=service.name)


# -- errors and replays ----------------------------------------------------------------------


async def test_invalid_argument_names_the_fields_and_not_found_has_its_class(
    aclient: AsyncClient, parent: str
) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await aclient.publish_service(
            parent=parent, service={"region": ""}, service_id="Bad_Id", validate_only=True
        )
    assert [field for field, _ in caught.value.field_violations] == ["service_id"]
    with pytest.raises(errors.InvalidArgument) as caught:
        await aclient.publish_service(
            parent=parent, service={"region": ""}, service_id="fine", validate_only=True
        )
    # The real server reports the id alone first (the fake reports every field at once), and
    # the body's violations once the id is valid.
    assert caught.value.field_violations == [
        ("service.provider_account", "is required"),
        ("service.region", "is required"),
        ("service.load_balancer", "set exactly one of adopted or managed"),
    ]
    assert caught.value.reason == "INVALID_ARGUMENT"
    with pytest.raises(errors.NotFound) as missing:
        await aclient.get_service(name=f"{parent}/services/nowhere")
    assert missing.value.code.name == "NOT_FOUND"


async def test_an_explicit_request_id_replays_the_same_operation(
    aclient: AsyncClient, parent: str, networks: dict[str, dict[str, Any]]
) -> None:
    request_id = str(uuid.uuid4())
    spec = service_spec(parent, networks)
    first = await aclient.publish_service(
        parent=parent, service=spec, service_id="replayed", request_id=request_id
    )
    again = await aclient.publish_service(
        parent=parent, service=spec, service_id="replayed", request_id=request_id
    )
    assert again.name == first.name
    await first.result(timeout=DONE_WITHIN)
    # Even once done, the same request id answers with the same operation, not AlreadyExists.
    after = await aclient.publish_service(
        parent=parent, service=spec, service_id="replayed", request_id=request_id
    )
    assert after.name == first.name
    with pytest.raises(errors.AlreadyExists):
        await aclient.publish_service(parent=parent, service=spec, service_id="replayed")


# -- watches ---------------------------------------------------------------------------------


async def test_async_watch_sends_the_snapshot_then_a_live_change(
    aclient: AsyncClient, parent: str, networks: dict[str, dict[str, Any]]
) -> None:
    service = await published(aclient, parent, networks, "watched")
    watch = aclient.watch_services(parent=parent)
    events = aiter(watch)
    try:
        async with asyncio.timeout(DONE_WITHIN):
            first, synced = await anext(events), await anext(events)
            assert (first.type_name, first.resource.name) == ("EXISTING", service.name)
            assert synced.type_name == "SYNCED"
            await aclient.update_service(
                service={"name": service.name, "labels": {"watched": "yes"}},
                update_mask="labels",
            )
            async for event in events:
                if event.type_name == "MODIFIED" and event.resource.labels.get("watched"):
                    break
    finally:
        await watch.aclose()
    assert event.resource.name == service.name


async def test_blocking_watch_sends_the_snapshot_then_a_live_change(
    aclient: AsyncClient, config: ClientConfig, parent: str, networks: dict[str, dict[str, Any]]
) -> None:
    service = await published(aclient, parent, networks, "watched")
    snapshot_seen = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch(client: Client) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for event in client.watch_services(parent=parent):
            seen.append((event.type_name, event.resource.name if event.resource else ""))
            if event.type_name == "SYNCED":
                loop.call_soon_threadsafe(snapshot_seen.set)
            if event.type_name == "MODIFIED" and event.resource.labels.get("watched"):
                break  # leaving the loop cancels the stream
        return seen

    client = Client(config)
    watching = asyncio.create_task(asyncio.to_thread(watch, client))
    try:
        async with asyncio.timeout(DONE_WITHIN):
            await snapshot_seen.wait()
            await aclient.update_service(
                service={"name": service.name, "labels": {"watched": "yes"}},
                update_mask=["labels"],
            )
            seen = await watching
    finally:
        # Closing the channel ends a watch still waiting (a failed test), so no thread lingers.
        client.close()
        await asyncio.wait([watching], timeout=5)
    assert seen[:2] == [("EXISTING", service.name), ("SYNCED", "")]
    assert seen[-1] == ("MODIFIED", service.name)
