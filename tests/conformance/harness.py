"""The conformance harness: linkplane's public gRPC API on one side, the simulator's public
surfaces (the AWS wire protocol and the admin HTTP API) on the other.

Every conformance test acts only through what a user has: the generated `linkplane.v1` stubs
against a running server, and, to look at "AWS", aiobotocore clients acting as an account (STS
AssumeRole at the simulator) or the simulator's admin API over HTTP. Nothing here reaches into
the server's or the simulator's Python objects.

Isolation: each test gets its own project and its own, never reused, AWS account ids with
freshly seeded networks, so one simulator and one control plane serve the whole package.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import grpc
from aiobotocore.session import AioSession, get_session
from botocore.config import Config
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import any_pb2, field_mask_pb2

from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    common_pb2,
    connection_pb2,
    consumer_service_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
    service_pb2,
)

REGION = "us-east-1"
# Simulated seconds per wall second: NLB 120 s → 0.6 s, endpoint pending 60 s → 0.3 s.
TIME_SCALE = 200.0
# Generous: the suite runs on two busy cores next to other test runs.
TIMEOUT = 60.0

Conn = connection_pb2.Connection
Svc = service_pb2.Service
SC = service_pb2.ServiceConnection
TRUE = common_pb2.Condition.STATUS_TRUE
FALSE = common_pb2.Condition.STATUS_FALSE

# Account ids are never reused within a run: the simulator is shared by every test.
_ACCOUNT_IDS = itertools.count(400_000_000_001)
_SESSIONS: list[AioSession] = []
# The tests must see what the simulator answered, not what an SDK retry made of it.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def new_account_id() -> str:
    return f"{next(_ACCOUNT_IDS):012d}"


def _session() -> AioSession:
    """One aiobotocore session for the package: it caches the (slow to load) service models."""
    if not _SESSIONS:
        _SESSIONS.append(get_session())
    return _SESSIONS[0]


async def eventually(
    probe: Callable[[], Awaitable[Any]],
    predicate: Callable[[Any], bool],
    timeout: float = TIMEOUT,
    interval: float = 0.1,
) -> Any:
    """Poll `probe` until `predicate` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while True:
        value = await probe()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s; last value:\n{value}")
        await asyncio.sleep(interval)


@dataclasses.dataclass(frozen=True)
class Network:
    """A seeded VPC: one subnet per AZ and a security group."""

    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str
    availability_zones: list[str]
    az_ids: list[str]
    cidr: str
    region: str = REGION
    route_table_ids: list[str] = dataclasses.field(default_factory=list)
    ipv6_cidr_block: str | None = None
    ipv6_only_subnet_ids: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Account:
    """An AWS account of this test, registered in its project, with one seeded network."""

    account_id: str
    network: Network
    resource: str  # projects/{project}/accounts/{id}


class Sim:
    """The simulator from outside: its admin HTTP API and aiobotocore clients per account."""

    def __init__(self, endpoint_url: str, stack: contextlib.AsyncExitStack) -> None:
        self.endpoint_url = endpoint_url
        self._stack = stack
        self._http: aiohttp.ClientSession | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    async def admin(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        if self._http is None:
            self._http = await self._stack.enter_async_context(aiohttp.ClientSession())
        async with self._http.request(
            method, f"{self.endpoint_url}/_sim/{path}", json=body, params=params
        ) as answer:
            payload = await answer.json()
            assert answer.status == 200, payload
            return payload

    async def objects(self, account: str) -> dict[str, list[dict[str, Any]]]:
        """Load balancers, endpoint services and endpoints the account owns."""
        return dict(await self.admin("GET", "objects", params={"account": account}))

    async def endpoints(self, account: str) -> list[dict[str, Any]]:
        return list((await self.objects(account))["endpoints"])

    async def requests(self, account: str, action: str | None = None) -> list[dict[str, Any]]:
        """The simulator's request log for `account`, oldest first."""
        params = {"account": account, "limit": "50000"}
        if action:
            params["action"] = action
        return list(await self.admin("GET", "requests", params=params))

    async def seed_network(
        self, account: str, cidr: str, azs: int = 2, region: str = REGION, **options: bool
    ) -> Network:
        """A VPC (dual-stack unless told), one subnet and route table per AZ, a security group;
        `options`: dual_stack, ipv6_only_subnets, dns_hostnames (POST /_sim/seed-network)."""
        seeded = await self.admin(
            "POST",
            "seed-network",
            {"account_id": account, "region": region, "cidr": cidr, "azs": azs, **options},
        )
        return Network(
            vpc_id=seeded["vpc_id"],
            subnet_ids=list(seeded["subnet_ids"]),
            security_group_id=seeded["security_group_id"],
            availability_zones=list(seeded["availability_zones"]),
            az_ids=list(seeded["az_ids"]),
            cidr=cidr,
            region=region,
            route_table_ids=list(seeded.get("route_table_ids") or []),
            ipv6_cidr_block=seeded.get("ipv6_cidr_block"),
            ipv6_only_subnet_ids=list(seeded.get("ipv6_only_subnet_ids") or []),
        )

    async def client(self, account: str, service: str, region: str = REGION) -> Any:
        """An aiobotocore client acting as `account` (STS AssumeRole, as a person would)."""
        key = (account, f"{service}@{region}")
        # verify=False: the simulator serves plain HTTP, there is no certificate to verify (and
        # aiobotocore then loads no CA bundle into each client).
        if key not in self._clients:
            sts = await self._stack.enter_async_context(
                _session().create_client(
                    "sts",
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    verify=False,
                    aws_access_key_id="test",
                    aws_secret_access_key="test",
                )
            )
            creds = (
                await sts.assume_role(
                    RoleArn=f"arn:aws:iam::{account}:role/conformance",
                    RoleSessionName="conformance",
                )
            )["Credentials"]
            self._clients[key] = await self._stack.enter_async_context(
                _session().create_client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    verify=False,
                    aws_access_key_id=creds["AccessKeyId"],
                    aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"],
                    config=NO_RETRIES,
                )
            )
        return self._clients[key]

    async def endpoint(
        self, account: str, endpoint_id: str, region: str = REGION
    ) -> dict[str, Any]:
        """DescribeVpcEndpoints as the owner; {} once AWS no longer reports it."""
        ec2 = await self.client(account, "ec2", region)
        answer = await ec2.describe_vpc_endpoints(
            Filters=[{"Name": "vpc-endpoint-id", "Values": [endpoint_id]}]
        )
        found = answer["VpcEndpoints"]
        return dict(found[0]) if found else {}

    async def service_configuration(self, account: str, service_id: str) -> dict[str, Any]:
        ec2 = await self.client(account, "ec2")
        answer = await ec2.describe_vpc_endpoint_service_configurations(ServiceIds=[service_id])
        return dict(answer["ServiceConfigurations"][0])

    async def allowed_principals(self, account: str, service_id: str) -> set[str]:
        ec2 = await self.client(account, "ec2")
        answer = await ec2.describe_vpc_endpoint_service_permissions(ServiceId=service_id)
        return {p["Principal"] for p in answer["AllowedPrincipals"]}


class Api:
    """linkplane's generated stubs, plus the few steps every test repeats."""

    def __init__(self, channel: grpc.aio.Channel, project: str) -> None:
        self.project = project
        self.parent = f"projects/{project}"
        self.channel = channel
        self.accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        self.provider = provider_service_pb2_grpc.ProviderServiceStub(channel)
        self.consumer = consumer_service_pb2_grpc.ConsumerServiceStub(channel)
        self.operations = operations_pb2_grpc.OperationsStub(channel)

    # -- accounts -------------------------------------------------------------------------------
    async def register(self, account_id: str) -> str:
        await self.accounts.RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=self.parent,
                account_id=account_id,
                account=account_pb2.Account(
                    role_arn=f"arn:aws:iam::{account_id}:role/linkplane",
                    external_id="linkplane-conformance",
                ),
                request_id=str(uuid.uuid4()),
            )
        )
        return f"{self.parent}/accounts/{account_id}"

    # -- operations -----------------------------------------------------------------------------
    async def wait(
        self, operation: operations_pb2.Operation, timeout: float = TIMEOUT
    ) -> operations_pb2.Operation:
        """The operation once done (success or error)."""
        if operation.done:
            return operation
        done: operations_pb2.Operation = await eventually(
            lambda: self.operations.GetOperation(
                operations_pb2.GetOperationRequest(name=operation.name)
            ),
            lambda op: op.done,
            timeout,
        )
        return done

    async def succeed(self, operation: operations_pb2.Operation) -> any_pb2.Any:
        done = await self.wait(operation)
        assert not done.HasField("error"), done.error
        response: any_pb2.Any = done.response
        return response

    # -- services -------------------------------------------------------------------------------
    def service_name(self, service_id: str) -> str:
        return f"{self.parent}/services/{service_id}"

    async def publish(self, service_id: str, spec: Svc) -> Svc:
        """Publish and wait for the Operation to succeed; the Service as it is then."""
        await self.succeed(
            await self.provider.PublishService(
                provider_service_pb2.PublishServiceRequest(
                    parent=self.parent,
                    service_id=service_id,
                    service=spec,
                    request_id=str(uuid.uuid4()),
                )
            )
        )
        return await self.get_service(self.service_name(service_id))

    async def get_service(self, name: str) -> Svc:
        return await self.provider.GetService(provider_service_pb2.GetServiceRequest(name=name))

    async def wait_service(self, name: str, predicate: Callable[[Svc], bool]) -> Svc:
        service: Svc = await eventually(lambda: self.get_service(name), predicate)
        return service

    async def update_service(self, spec: Svc, *paths: str) -> operations_pb2.Operation:
        return await self.wait(
            await self.provider.UpdateService(
                provider_service_pb2.UpdateServiceRequest(
                    service=spec,
                    update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
                    request_id=str(uuid.uuid4()),
                )
            )
        )

    async def delete_service(self, name: str, force: bool = False) -> operations_pb2.Operation:
        return await self.wait(
            await self.provider.DeleteService(
                provider_service_pb2.DeleteServiceRequest(
                    name=name, force=force, request_id=str(uuid.uuid4())
                )
            )
        )

    async def inventory(self, service: str, filter: str = "") -> list[SC]:
        answer = await self.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(
                parent=service, filter=filter, page_size=1000
            )
        )
        return list(answer.service_connections)

    async def accept(
        self, service: str, endpoint_ids: list[str], reason: str = ""
    ) -> provider_service_pb2.AcceptServiceConnectionsResponse:
        response = provider_service_pb2.AcceptServiceConnectionsResponse()
        (
            await self.succeed(
                await self.provider.AcceptServiceConnections(
                    provider_service_pb2.AcceptServiceConnectionsRequest(
                        service=service,
                        endpoint_ids=endpoint_ids,
                        reason=reason,
                        request_id=str(uuid.uuid4()),
                    )
                )
            )
        ).Unpack(response)
        return response

    async def reject(
        self, service: str, endpoint_ids: list[str], reason: str = ""
    ) -> provider_service_pb2.RejectServiceConnectionsResponse:
        response = provider_service_pb2.RejectServiceConnectionsResponse()
        (
            await self.succeed(
                await self.provider.RejectServiceConnections(
                    provider_service_pb2.RejectServiceConnectionsRequest(
                        service=service,
                        endpoint_ids=endpoint_ids,
                        reason=reason,
                        request_id=str(uuid.uuid4()),
                    )
                )
            )
        ).Unpack(response)
        return response

    # -- connections ----------------------------------------------------------------------------
    def connection_name(self, connection_id: str) -> str:
        return f"{self.parent}/connections/{connection_id}"

    async def create_connection(
        self, connection_id: str, spec: Conn, timeout: float = TIMEOUT
    ) -> operations_pb2.Operation:
        """Create and wait until the Operation is done (success or error)."""
        return await self.wait(
            await self.consumer.CreateConnection(
                consumer_service_pb2.CreateConnectionRequest(
                    parent=self.parent,
                    connection_id=connection_id,
                    connection=spec,
                    request_id=str(uuid.uuid4()),
                )
            ),
            timeout,
        )

    async def connect(self, connection_id: str, spec: Conn) -> Conn:
        """Create; the Operation must succeed. The Connection it answered."""
        done = await self.create_connection(connection_id, spec)
        assert not done.HasField("error"), done.error
        answered = Conn()
        done.response.Unpack(answered)
        return answered

    async def get_connection(self, name: str) -> Conn:
        return await self.consumer.GetConnection(
            consumer_service_pb2.GetConnectionRequest(name=name)
        )

    async def wait_connection(self, name: str, predicate: Callable[[Conn], bool]) -> Conn:
        connection: Conn = await eventually(lambda: self.get_connection(name), predicate)
        return connection

    async def update_connection(self, spec: Conn, *paths: str) -> operations_pb2.Operation:
        return await self.wait(
            await self.consumer.UpdateConnection(
                consumer_service_pb2.UpdateConnectionRequest(
                    connection=spec,
                    update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
                    request_id=str(uuid.uuid4()),
                )
            )
        )

    async def delete_connection(self, name: str) -> operations_pb2.Operation:
        return await self.wait(
            await self.consumer.DeleteConnection(
                consumer_service_pb2.DeleteConnectionRequest(
                    name=name, request_id=str(uuid.uuid4())
                )
            )
        )


class Tenant:
    """One test's world: a project, its API, the simulator and fresh AWS accounts."""

    def __init__(self, api: Api, sim: Sim) -> None:
        self.api = api
        self.sim = sim
        self.project = api.project

    async def account(
        self, cidr: str = "10.0.0.0/16", azs: int = 2, *, register: bool = True
    ) -> Account:
        """A new AWS account with a seeded network; registered in the project unless told."""
        account_id = new_account_id()
        network = await self.sim.seed_network(account_id, cidr, azs)
        resource = await self.api.register(account_id) if register else ""
        return Account(account_id, network, resource)

    async def clean_up(self) -> None:
        """Ask linkplane to delete what the test left (connections, then services with force)
        without waiting: settled resources are resynced every 2 s, and hundreds of them would
        slow every later test. A refused delete (already deleting, gone) is ignored."""
        listed = await self.api.consumer.ListConnections(
            consumer_service_pb2.ListConnectionsRequest(parent=self.api.parent, page_size=1000)
        )
        for connection in listed.connections:
            if connection.state != Conn.STATE_DELETING:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await self.api.consumer.DeleteConnection(
                        consumer_service_pb2.DeleteConnectionRequest(name=connection.name)
                    )
        services = await self.api.provider.ListServices(
            provider_service_pb2.ListServicesRequest(parent=self.api.parent, page_size=1000)
        )
        for service in services.services:
            if service.state != Svc.STATE_DELETING:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await self.api.provider.DeleteService(
                        provider_service_pb2.DeleteServiceRequest(name=service.name, force=True)
                    )

    def managed_service(
        self,
        provider: Account,
        *,
        allowed: list[str] | None = None,
        subnets: int | None = None,
        **policy: Any,
    ) -> Svc:
        """A Service behind an NLB linkplane manages, in the provider's seeded network."""
        return Svc(
            provider_account=provider.resource,
            region=REGION,
            load_balancer=service_pb2.LoadBalancer(
                managed=service_pb2.ManagedLoadBalancer(
                    subnet_ids=provider.network.subnet_ids[:subnets],
                    listeners=[service_pb2.Listener(port=443)],
                    targets=[service_pb2.Target(id=_first_host(provider.network.cidr))],
                )
            ),
            allowed_principals=allowed or [],
            acceptance_policy=service_pb2.AcceptancePolicy(**policy),
        )

    def connection(
        self,
        consumer: Account,
        *,
        service: str = "",
        service_name: str = "",
        network: Network | None = None,
        **fields: Any,
    ) -> Conn:
        """A Connection from the consumer's (seeded, or given) network to a target."""
        net = network or consumer.network
        target: dict[str, Any] = {"service": service} if service else {"service_name": service_name}
        placement: dict[str, Any] = {"region": net.region, "vpc_id": net.vpc_id}
        if "route_table_ids" not in fields:  # gateway endpoints have route tables, no subnets
            placement["subnet_ids"] = net.subnet_ids
        return Conn(consumer_account=consumer.resource, **placement, **target, **fields)


def _first_host(cidr: str) -> str:
    """A target IP inside the provider's VPC (10.a.0.0/16 → 10.a.0.10)."""
    return str(ipaddress.ip_network(cidr)[10])


def condition(resource: Conn | Svc, kind: str) -> Any:
    """The resource's condition of type `kind`, or None."""
    for found in resource.conditions:
        if found.type == kind:
            return found
    return None


def live(state: object) -> bool:
    """An endpoint state AWS still counts as existing."""
    return str(state).lower() not in {"deleted", "deleting"}
