"""Fixtures for reconciler tests: the simulator over HTTP, a real Postgres, a full server.

The simulator enforces AWS's throttling buckets and delays, time-scaled; linkplane's own
limiter is told the same scale, exactly as `linkplane-server dev` does. One simulator per
process (moto's state is global), so the fixture is package-scoped like tests/sim's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc

from linkplane.server import logs
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    connection_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
    service_pb2,
)

PROVIDER = "111111111111"
CONSUMER = "222222222222"
OTHER_CONSUMER = "333333333333"
REGION = "us-east-1"
TIME_SCALE = 200.0

# Debug logging renders a line per AWS call; with hundreds of endpoints that costs the event loop
# (and the simulator thread sharing its GIL) more than the work itself.
logs.configure("console", "info")


@pytest.fixture(scope="package")
def sim() -> Iterator[sim_server.SimHandle]:
    handle = sim_server.start(time_scale=TIME_SCALE, throttling=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="package")
def networks(sim: sim_server.SimHandle) -> dict[str, dict[str, Any]]:
    return {
        account: sim_server.seed_network(sim, account_id=account, region=REGION, cidr=cidr)
        for account, cidr in (
            (PROVIDER, "10.1.0.0/16"),
            (CONSUMER, "10.2.0.0/16"),
            (OTHER_CONSUMER, "10.3.0.0/16"),
        )
    }


def worker_settings(sim: sim_server.SimHandle, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "role": Role.ALL,
        "aws_endpoint_url": sim.endpoint_url,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "aws_time_scale": TIME_SCALE,
        "transitional_resync_seconds": 0.2,
        "resync_interval_seconds": 2.0,
        "lease_seconds": 5.0,
        "shutdown_grace_seconds": 1.0,
        # Sweeps run when a test asks (test_garbage.py), not at a moment of the suite's timing.
        "garbage_collection": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="package")
async def control_plane(
    sim: sim_server.SimHandle, networks: dict[str, Any], database_url: str
) -> AsyncIterator[Runtime]:
    runtime = Runtime(worker_settings(sim), database_url)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture(scope="package")
async def plane_channel(control_plane: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{control_plane.port}") as channel:
        yield channel


class Api:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        self.provider = provider_service_pb2_grpc.ProviderServiceStub(channel)
        self.consumer = consumer_service_pb2_grpc.ConsumerServiceStub(channel)
        self.operations = operations_pb2_grpc.OperationsStub(channel)

    async def register(self, project: str, *account_ids: str) -> None:
        for account_id in account_ids:
            await self.accounts.RegisterAccount(
                account_service_pb2.RegisterAccountRequest(
                    parent=f"projects/{project}",
                    account_id=account_id,
                    account=account_pb2.Account(
                        role_arn=f"arn:aws:iam::{account_id}:role/linkplane",
                        external_id="linkplane-tests",
                    ),
                    request_id=str(uuid.uuid4()),
                )
            )


@pytest.fixture
def api(plane_channel: grpc.aio.Channel) -> Api:
    return Api(plane_channel)


async def eventually(
    probe: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = 30.0
) -> Any:
    """Poll `probe` until `predicate` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await probe()
        if predicate(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached in {timeout}s; last value:\n{value}")


def managed_service(
    project: str,
    networks: dict[str, Any],
    *,
    allowed: tuple[str, ...] = (CONSUMER,),
    **policy: Any,
) -> service_pb2.Service:
    """A Service spec with a managed NLB in the provider's seeded network."""
    return service_pb2.Service(
        provider_account=f"projects/{project}/accounts/{PROVIDER}",
        region=REGION,
        load_balancer=service_pb2.LoadBalancer(
            managed=service_pb2.ManagedLoadBalancer(
                subnet_ids=networks[PROVIDER]["subnet_ids"],
                listeners=[service_pb2.Listener(port=443)],
                targets=[service_pb2.Target(id="10.1.0.10")],
            )
        ),
        allowed_principals=list(allowed),
        acceptance_policy=service_pb2.AcceptancePolicy(**policy),
    )


def connection_spec(
    project: str, network: dict[str, Any], service: str, account: str = CONSUMER
) -> connection_pb2.Connection:
    """A Connection spec from `account`'s `network` (vpc_id, subnet_ids) to `service`."""
    return connection_pb2.Connection(
        service=service,
        consumer_account=f"projects/{project}/accounts/{account}",
        region=REGION,
        vpc_id=network["vpc_id"],
        subnet_ids=network["subnet_ids"],
    )


async def wait_done(api: Api, name: str, timeout: float = 30.0) -> operations_pb2.Operation:
    """The Operation `name` once done (success or error)."""
    return await eventually(
        lambda: api.operations.GetOperation(operations_pb2.GetOperationRequest(name=name)),
        lambda op: op.done,
        timeout,
    )


async def publish(
    api: Api, project: str, service_id: str, service: service_pb2.Service
) -> service_pb2.Service:
    """Publish `service` and wait until its operation succeeds; returns the Service."""
    published = await api.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id=service_id, service=service
        )
    )
    done = await wait_done(api, published.name)
    assert not done.HasField("error"), done.error
    return await api.provider.GetService(
        provider_service_pb2.GetServiceRequest(name=f"projects/{project}/services/{service_id}")
    )
