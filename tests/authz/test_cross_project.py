"""Cross-project PrivateLink, end to end on the simulator, with authentication on.

Project A (alice, provider) publishes a service that admits AWS account 222222222222; project B
(bob, consumer) connects to it from that account; alice accepts; each sees only its side:
bob sees his Connection (service name, region, zones, state), never A's Service; alice sees
her inventory (owner account, endpoint, request message, decision), never B's Connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2

from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from linkplane.v1 import (
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.authz.conftest import Caller, callers_of, new_project
from tests.authz.conftest import settings as authz_settings
from tests.support import runtimes, simulator
from tests.support.api import eventually, status_details
from tests.support.simulator import CONSUMER, PROVIDER, REGION, TIME_SCALE
from tests.support.specs import connection_spec, managed_service


@pytest.fixture(scope="module")
def sim() -> Iterator[sim_server.SimHandle]:
    yield from simulator.running(TIME_SCALE)


@pytest.fixture(scope="module")
def networks(sim: sim_server.SimHandle) -> dict[str, dict[str, Any]]:
    return simulator.seed_networks(sim, accounts=(PROVIDER, CONSUMER))


@pytest.fixture(scope="module")
async def plane(
    sim: sim_server.SimHandle, networks: dict[str, Any], own_database_url: str
) -> AsyncIterator[Runtime]:
    # A database of the module's own: this plane reconciles every row it finds, and on the
    # shared database (every test of the worker: tests/support/plugin.py) it met the services
    # other tests published with their own simulators' subnets (100+ CreateLoadBalancer refused
    # InvalidSubnetID in one test).
    auth = authz_settings()
    settings = runtimes.worker_settings(
        sim, time_scale=TIME_SCALE, auth_tokens=auth.auth_tokens, admins=auth.admins
    )
    async with runtimes.running(settings, own_database_url) as runtime:
        yield runtime


@pytest.fixture(scope="module")
async def people(plane: Runtime) -> AsyncIterator[dict[str | None, Caller]]:
    async with callers_of(plane, ("root", "alice", "bob")) as out:
        yield out


async def done(caller: Caller, name: str) -> operations_pb2.Operation:
    operation = await eventually(
        lambda: caller.operations.GetOperation(operations_pb2.GetOperationRequest(name=name)),
        lambda op: op.done,
        60,
    )
    assert not operation.HasField("error"), operation.error
    return operation


async def denied(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


@pytest.mark.timeout(180)
async def test_b_connects_to_as_service_and_each_sees_only_its_side(people, networks):
    root, alice, bob = people["root"], people["alice"], people["bob"]
    a, b = new_project("prov"), new_project("cons")
    await root.register(a, PROVIDER, role_arn=f"arn:aws:iam::{PROVIDER}:role/linkplane")
    await root.register(b, CONSUMER, role_arn=f"arn:aws:iam::{CONSUMER}:role/linkplane")
    await root.grant(a, "roles/linkplane.provider", "alice")
    await root.grant(b, "roles/linkplane.consumer", "bob")

    # A publishes a service that admits B's consumer account, with manual acceptance.
    spec = managed_service(
        a, networks, allowed=(CONSUMER,), mode=service_pb2.AcceptancePolicy.MODE_MANUAL
    )
    published = await alice.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{a}", service_id="payments", service=spec
        )
    )
    await done(alice, published.name)
    service_name = f"projects/{a}/services/payments"

    # B connects from its own account; the connection waits for the provider.
    request = connection_spec(b, networks[CONSUMER], service_name)
    request.request_message = "orders team, ticket 42"
    created = await bob.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{b}", connection_id="orders", connection=request
        )
    )
    connection_name = f"projects/{b}/connections/orders"
    pending = await eventually(
        lambda: bob.consumer.GetConnection(
            consumer_service_pb2.GetConnectionRequest(name=connection_name)
        ),
        lambda c: c.state == connection_pb2.Connection.STATE_PENDING_ACCEPTANCE,
        60,
    )
    await done(bob, created.name)

    # What B sees of the target: its service name, region, zones, state — not A's spec.
    assert pending.resolved_service_name.startswith("com.amazonaws.vpce.")
    assert pending.region == REGION
    for secret in ("10.1.0.10", *networks[PROVIDER]["subnet_ids"]):
        assert secret.encode() not in pending.SerializeToString()
    error = await denied(
        bob.provider.GetService(provider_service_pb2.GetServiceRequest(name=service_name))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await denied(
        bob.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(parent=service_name)
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    # What A sees: its inventory (owner, endpoint, request message), not B's Connection.
    inventory = await eventually(
        lambda: alice.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(parent=service_name)
        ),
        lambda r: len(r.service_connections) == 1,
        60,
    )
    entry = inventory.service_connections[0]
    assert entry.owner_account_id == CONSUMER
    assert entry.endpoint_id == pending.endpoint_id
    assert entry.request_message == "orders team, ticket 42"
    assert entry.connection == ""  # B's resource name is B's business
    probe = await alice.provider.ListServiceConnections(
        provider_service_pb2.ListServiceConnectionsRequest(
            parent=service_name, filter=f'connection = "{connection_name}"'
        )
    )
    assert list(probe.service_connections) == []  # nor can a filter probe for it
    assert b.encode() not in inventory.SerializeToString()
    error = await denied(
        alice.consumer.GetConnection(
            consumer_service_pb2.GetConnectionRequest(name=connection_name)
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await denied(
        alice.operations.GetOperation(operations_pb2.GetOperationRequest(name=created.name))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND

    # A accepts; B's connection becomes AVAILABLE with its DNS names and addresses.
    accepted = await alice.provider.AcceptServiceConnections(
        provider_service_pb2.AcceptServiceConnectionsRequest(
            service=service_name, endpoint_ids=[entry.endpoint_id], reason="approved"
        )
    )
    await done(alice, accepted.name)
    available = await eventually(
        lambda: bob.consumer.GetConnection(
            consumer_service_pb2.GetConnectionRequest(name=connection_name)
        ),
        lambda c: c.state == connection_pb2.Connection.STATE_AVAILABLE,
        60,
    )
    assert available.dns_entries
    assert {nic.availability_zone for nic in available.network_interfaces}
    decided = await alice.provider.ListServiceConnections(
        provider_service_pb2.ListServiceConnectionsRequest(parent=service_name)
    )
    decision = decided.service_connections[0].decision
    assert decision.verdict == service_pb2.ServiceConnection.Decision.VERDICT_ACCEPTED
    assert decision.actor == "alice"


async def test_a_service_that_does_not_admit_the_consumer_answers_like_a_missing_one(
    people, networks
):
    root, alice, bob = people["root"], people["alice"], people["bob"]
    a, b = new_project("prov"), new_project("cons")
    await root.register(a, PROVIDER)
    await root.register(b, CONSUMER)
    await root.grant(a, "roles/linkplane.provider", "alice")
    await root.grant(b, "roles/linkplane.consumer", "bob")
    # Published but not yet reconciled is enough: the check reads the spec, not AWS.
    await alice.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{a}",
            service_id="private",
            service=managed_service(a, networks, allowed=("333333333333",)),
        )
    )
    answers = []
    for target in (f"projects/{a}/services/private", f"projects/{a}/services/missing"):
        error = await denied(
            bob.consumer.CreateConnection(
                consumer_service_pb2.CreateConnectionRequest(
                    parent=f"projects/{b}",
                    connection=connection_spec(b, networks[CONSUMER], target),
                    validate_only=True,
                )
            )
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        info = status_details(error)
        assert info["reason"] == "SERVICE_NOT_SHARED"
        answers.append(error.details().replace(target, "TARGET"))
    assert answers[0] == answers[1]
    assert "333333333333" not in answers[0]
