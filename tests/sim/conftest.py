"""Fixtures for the simulator tests: one simulator for the package, wiped before each test.

Tests talk to it only through aiobotocore over HTTP, exactly as linkplane talks to AWS. The
``aws`` fixture hands out clients per account (other accounts via STS AssumeRole) and knows the
few multi-step recipes (seeded network, NLB, endpoint service) most tests start from.
"""

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from linkplane.sim import server as sim_server
from tests.support import simulator

PROVIDER = "111111111111"
CONSUMER = "222222222222"
DEFAULT_ACCOUNT = "123456789012"
REGION = "us-east-1"
TIME_SCALE = 1000.0

# No SDK retries: the tests must see exactly what the simulator answered.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="package")
def sim() -> Iterator[sim_server.SimHandle]:
    yield from simulator.running(TIME_SCALE)


@pytest.fixture(autouse=True)
def _fresh_sim(sim: sim_server.SimHandle) -> None:
    sim.reset()
    sim.set_time_scale(TIME_SCALE)
    sim.set_throttling(True)


_SESSIONS: list[Any] = []


def _shared_session() -> Any:
    """One aiobotocore session for all tests: it caches the (slow to load) service models."""
    if not _SESSIONS:
        _SESSIONS.append(get_session())
    return _SESSIONS[0]


@dataclasses.dataclass
class Account:
    """Clients acting as one AWS account, plus its seeded network."""

    account_id: str
    ec2: Any
    elbv2: Any
    route53: Any
    network: dict[str, Any]


class Aws:
    """Client factory and recipes; closes every client it opened."""

    PROVIDER = PROVIDER
    CONSUMER = CONSUMER
    DEFAULT_ACCOUNT = DEFAULT_ACCOUNT
    REGION = REGION

    def __init__(self, sim: sim_server.SimHandle, stack: contextlib.AsyncExitStack) -> None:
        self.sim = sim
        self._stack = stack
        self._session = _shared_session()

    async def client(
        self, service: str, credentials: dict[str, str] | None = None, region: str = REGION
    ) -> Any:
        creds = credentials or {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        return await self._stack.enter_async_context(
            self._session.create_client(
                service,
                endpoint_url=self.sim.endpoint_url,
                verify=simulator.PLAIN_HTTP,
                region_name=region,
                config=NO_RETRIES,
                **creds,
            )
        )

    async def credentials_for(self, account_id: str, role: str = "linkplane") -> dict[str, str]:
        """Credentials from STS AssumeRole into ``account_id`` (moto switches accounts)."""
        sts = await self.client("sts")
        answer = await sts.assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/{role}", RoleSessionName="tests"
        )
        creds = answer["Credentials"]
        return {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }

    async def account(self, account_id: str, cidr: str = "10.0.0.0/16", azs: int = 2) -> Account:
        if account_id == DEFAULT_ACCOUNT:
            creds = None
        else:
            creds = await self.credentials_for(account_id)
        network = sim_server.seed_network(
            self.sim, account_id=account_id, region=REGION, cidr=cidr, azs=azs
        )
        return Account(
            account_id,
            await self.client("ec2", creds),
            await self.client("elbv2", creds),
            await self.client("route53", creds),
            network,
        )

    async def nlb(self, owner: Account, name: str = "svc-nlb", subnets: int | None = None) -> str:
        subnet_ids = owner.network["subnet_ids"][:subnets]
        answer = await owner.elbv2.create_load_balancer(
            Name=name, Type="network", Scheme="internal", Subnets=subnet_ids
        )
        return str(answer["LoadBalancers"][0]["LoadBalancerArn"])

    async def service(
        self,
        owner: Account,
        *,
        acceptance_required: bool = True,
        allow: list[str] | None = None,
        nlb_subnets: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """An Available endpoint service behind a fresh NLB, allowing ``allow`` principals."""
        arn = await self.nlb(owner, name=f"nlb-{time.monotonic_ns()}", subnets=nlb_subnets)
        answer = await owner.ec2.create_vpc_endpoint_service_configuration(
            NetworkLoadBalancerArns=[arn], AcceptanceRequired=acceptance_required, **extra
        )
        service = answer["ServiceConfiguration"]
        if allow:
            await owner.ec2.modify_vpc_endpoint_service_permissions(
                ServiceId=service["ServiceId"], AddAllowedPrincipals=allow
            )
        await self.eventually(lambda: self.service_state(owner, service["ServiceId"]), "Available")
        return dict(service)

    async def endpoint(self, consumer: Account, service_name: str, **extra: Any) -> dict[str, Any]:
        answer = await consumer.ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=consumer.network["vpc_id"],
            ServiceName=service_name,
            SubnetIds=consumer.network["subnet_ids"],
            SecurityGroupIds=[consumer.network["security_group_id"]],
            **extra,
        )
        return dict(answer["VpcEndpoint"])

    @staticmethod
    async def service_state(owner: Account, service_id: str) -> str:
        answer = await owner.ec2.describe_vpc_endpoint_service_configurations(
            ServiceIds=[service_id]
        )
        return str(answer["ServiceConfigurations"][0]["ServiceState"])

    @staticmethod
    async def endpoint_state(account: Account, endpoint_id: str) -> str:
        answer = await account.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
        return str(answer["VpcEndpoints"][0]["State"])

    @staticmethod
    async def eventually(
        probe: Callable[[], Awaitable[object]], expected: object, within: float = 5.0
    ) -> None:
        """Poll ``probe`` until it returns ``expected`` (delays are scaled: this is quick)."""
        deadline = time.monotonic() + within
        last: object = None
        while time.monotonic() < deadline:
            last = await probe()
            if last == expected:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {expected!r}, still {last!r} after {within}s")


@pytest.fixture
async def aws(sim: sim_server.SimHandle) -> AsyncIterator[Aws]:
    async with contextlib.AsyncExitStack() as stack:
        yield Aws(sim, stack)
