"""The call wrapper and the reconciler's helpers, against moto over HTTP and a scripted fake.

moto answers the calls it implements (VPCs, subnets, NLBs, endpoint services, endpoints);
for what it does not (DescribeVpcEndpointConnections, Accept/Reject, throttling, Unsuccessful[]
answers) a scripted fake client stands in, so batching and partial failure are still proven.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from botocore import exceptions as botocore_exceptions
from prometheus_client import REGISTRY

from linkplane.server.aws import (
    calls,
    endpoint_services,
    endpoints,
    errors,
    loadbalancers,
    sessions,
    tags,
    throttlers,
)
from linkplane.server.domain import states

REGION = "us-east-1"

AWS_ENDPOINT_STATES = {
    "PendingAcceptance",
    "Pending",
    "Available",
    "Deleting",
    "Deleted",
    "Rejected",
    "Failed",
    "Expired",
    "Partial",
}
"""VpcEndpoint.State as the EC2 API reference spells it (the wire says `pendingAcceptance`,
`available`, ...: compared case-insensitively)."""


def tenant(account_id: str) -> sessions.AccountRef:
    return sessions.AccountRef(account_id, role_arn=f"arn:aws:iam::{account_id}:role/linkplane")


def calls_total(service: str, action: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "linkplane_aws_calls_total", {"service": service, "action": action, "outcome": outcome}
    )
    return value or 0.0


# --- against moto --------------------------------------------------------------------------


async def test_limiter_paces_real_calls_and_metrics_count_them(
    clients: sessions.AwsClients, fresh_account: Callable[[], str]
) -> None:
    limiter = throttlers.Limiter(
        rates={**throttlers.AWS_RATES, throttlers.EC2_NON_MUTATING: throttlers.Rate(2, 10)},
        safety=1.0,
    )
    account = tenant(fresh_account())
    # Warm up (first call per account loads botocore's model and moto's backend) with another
    # limiter, so the measured limiter starts full and its timing is not masked.
    await calls.Context(clients, throttlers.Limiter(), account, REGION).call("ec2", "DescribeVpcs")
    ctx = calls.Context(clients, limiter, account, REGION)
    before = calls_total("ec2", "DescribeVpcs", "ok")
    started = time.monotonic()
    await asyncio.gather(*(ctx.call("ec2", "DescribeVpcs") for _ in range(7)))
    elapsed = time.monotonic() - started
    # Burst of 2, then 5 more at 10 per second: at least 0.5 s, whatever moto's speed.
    assert elapsed >= 0.45
    stats = limiter.stats()
    assert stats.acquired == 7
    assert stats.waits == 5
    assert calls_total("ec2", "DescribeVpcs", "ok") - before == 7


async def test_real_errors_are_classified_and_counted(
    clients: sessions.AwsClients, fresh_account: Callable[[], str]
) -> None:
    ctx = calls.Context(clients, throttlers.Limiter(), tenant(fresh_account()), REGION)
    before = calls_total("ec2", "CreateVpc", "invalid")
    with pytest.raises(errors.AwsError) as invalid:
        await ctx.call("ec2", "CreateVpc", CidrBlock="not-a-cidr")
    assert (invalid.value.code, invalid.value.kind) == (
        "InvalidParameterValue",
        errors.Kind.INVALID,
    )
    assert not invalid.value.retryable
    assert invalid.value.http_status == 400
    assert calls_total("ec2", "CreateVpc", "invalid") - before == 1

    with pytest.raises(errors.AwsError) as missing:
        await ctx.call(
            "ec2", "DescribeVpcs", recently_created=True, VpcIds=["vpc-0123456789abcdef0"]
        )
    assert missing.value.code == "InvalidVpcID.NotFound"
    assert missing.value.retryable  # Just created: eventual consistency, try again.


async def test_paginated_describe_collects_every_page(
    clients: sessions.AwsClients, fresh_account: Callable[[], str]
) -> None:
    limiter = throttlers.Limiter()
    ctx = calls.Context(clients, limiter, tenant(fresh_account()), REGION)
    subnets = await network(ctx, "10.44.0.0/16")
    names = [f"lp-page-{i}" for i in range(5)]
    for name in names:
        await ctx.call("elbv2", "CreateLoadBalancer", Name=name, Subnets=subnets, Type="network")
    pages = [page async for page in ctx.paginate("elbv2", "DescribeLoadBalancers", PageSize=2)]
    assert len(pages) == 3
    assert sorted(lb["LoadBalancerName"] for p in pages for lb in p["LoadBalancers"]) == names
    collected = await ctx.collect(
        "elbv2", "DescribeLoadBalancers", "LoadBalancers", PaginationConfig={"PageSize": 2}
    )
    assert len(collected) == 5


async def network(ctx: calls.Context, cidr: str) -> list[str]:
    vpc = (await ctx.call("ec2", "CreateVpc", CidrBlock=cidr))["Vpc"]["VpcId"]
    prefix = cidr.rsplit(".", 2)[0]
    subnets = []
    for i, az in enumerate(("a", "b")):
        subnet = await ctx.call(
            "ec2",
            "CreateSubnet",
            VpcId=vpc,
            CidrBlock=f"{prefix}.{i}.0/24",
            AvailabilityZone=f"{REGION}{az}",
        )
        subnets.append(subnet["Subnet"]["SubnetId"])
    return subnets


async def test_provider_and_consumer_lifecycle_with_adoption(
    clients: sessions.AwsClients, fresh_account: Callable[[], str]
) -> None:
    limiter = throttlers.Limiter()
    provider = calls.Context(clients, limiter, tenant(fresh_account()), REGION)
    consumer = calls.Context(clients, limiter, tenant(fresh_account()), REGION)
    service_uid, endpoint_uid = str(uuid.uuid4()), str(uuid.uuid4())

    # Provider: an NLB, idempotent by its deterministic name.
    subnets = await network(provider, "10.55.0.0/16")
    lb_name = tags.deterministic_name(service_uid, "nlb")
    assert await loadbalancers.find_load_balancer_by_name(provider, lb_name) is None
    nlb = await loadbalancers.create_network_load_balancer(
        provider, uid=service_uid, name=lb_name, resource_name="payments", subnet_ids=subnets
    )
    assert nlb["Type"] == "network"
    assert nlb["Scheme"] == "internal"
    found_lb = await loadbalancers.find_load_balancer_by_name(provider, lb_name)
    assert found_lb is not None
    assert found_lb["LoadBalancerArn"] == nlb["LoadBalancerArn"]

    # Provider: the endpoint service, tagged for adoption.
    assert await endpoint_services.find_endpoint_service_by_uid(provider, service_uid) is None
    created = await endpoint_services.create_endpoint_service(
        provider,
        uid=service_uid,
        generation=1,
        name="payments",
        network_load_balancer_arns=[nlb["LoadBalancerArn"]],
        labels={"team": "payments"},
    )
    adopted = await endpoint_services.find_endpoint_service_by_uid(provider, service_uid)
    assert adopted is not None
    assert adopted["ServiceId"] == created["ServiceId"]
    assert tags.tag_value(adopted, "team") == "payments"
    assert await endpoint_services.find_endpoint_service_by_uid(provider, str(uuid.uuid4())) is None

    # Consumer, in another account: an interface endpoint to the service, found by its tag.
    consumer_subnets = await network(consumer, "10.66.0.0/16")
    vpc_id = (await consumer.call("ec2", "DescribeSubnets", SubnetIds=consumer_subnets[:1]))[
        "Subnets"
    ][0]["VpcId"]
    endpoint = await endpoints.create_endpoint(
        consumer,
        uid=endpoint_uid,
        generation=1,
        name="payments-client",
        vpc_id=vpc_id,
        service_name=created["ServiceName"],
        subnet_ids=consumer_subnets,
    )
    assert endpoint["VpcEndpointType"] == "Interface"
    mine = await endpoints.find_endpoint_by_uid(consumer, endpoint_uid)
    assert mine is not None
    assert mine["VpcEndpointId"] == endpoint["VpcEndpointId"]
    assert await endpoints.find_endpoint_by_uid(consumer, str(uuid.uuid4())) is None
    assert await endpoints.describe_endpoint(consumer, "vpce-0123456789abcdef0") is None
    described = await endpoints.describe_endpoint(consumer, endpoint["VpcEndpointId"])
    assert described is not None
    # AWS's own spelling (the API reference's State enum), which the normaliser maps to a
    # state of its own: an unknown spelling would be read as FAILED.
    assert described["State"].lower() in {state.lower() for state in AWS_ENDPOINT_STATES}
    assert states.normalise_endpoint_state(described["State"]) != "FAILED"

    # Teardown is idempotent: a second delete finds nothing to do and says so.
    assert await endpoints.delete_endpoints(consumer, [endpoint["VpcEndpointId"]]) == []
    assert await endpoint_services.delete_endpoint_service(provider, created["ServiceId"]) is True
    assert await endpoint_services.delete_endpoint_service(provider, created["ServiceId"]) is False
    assert await endpoint_services.find_endpoint_service_by_uid(provider, service_uid) is None


# --- against a scripted fake client ---------------------------------------------------------


class FakeClient:
    """Answers with scripted responses (or raises), records every request."""

    def __init__(self, answers: dict[str, list[Any]] | None = None) -> None:
        self.answers = answers or {}
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        async def invoke(**params: Any) -> dict[str, Any]:
            self.requests.append((method, params))
            script = self.answers.get(method, [])
            answer = script.pop(0) if script else {}
            if isinstance(answer, BaseException):
                raise answer
            return dict(answer) if not callable(answer) else answer(params)

        return invoke

    def get_paginator(self, method: str) -> FakePaginator:
        return FakePaginator(self, method)


class FakePaginator:
    def __init__(self, client: FakeClient, method: str) -> None:
        self.client, self.method = client, method

    def paginate(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        async def pages() -> AsyncIterator[dict[str, Any]]:
            for page in self.client.answers.get(self.method, []):
                self.client.requests.append((self.method, params))
                yield page

        return pages()


class FakeClients:
    def __init__(self, client: FakeClient) -> None:
        self.fake = client

    async def client(self, service: str, account: sessions.AccountRef, region: str) -> Any:
        return self.fake


def fake_context(client: FakeClient, limiter: throttlers.Limiter | None = None) -> calls.Context:
    return calls.Context(
        FakeClients(client), limiter or throttlers.Limiter(), tenant("777777777777"), REGION
    )


def throttled() -> botocore_exceptions.ClientError:
    return botocore_exceptions.ClientError(
        {
            "Error": {"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        },
        "CreateVpcEndpoint",
    )


async def test_a_throttled_call_drains_the_bucket(clock: Any) -> None:
    limiter = throttlers.Limiter(safety=1.0, clock=clock)
    ctx = fake_context(FakeClient({"create_vpc_endpoint": [throttled()]}), limiter)
    with pytest.raises(errors.AwsError) as caught:
        await ctx.call("ec2", "CreateVpcEndpoint", VpcId="vpc-1")
    assert errors.is_throttle(caught.value)
    assert caught.value.retryable
    assert limiter.stats().penalties == 1
    account = ctx.account.account_id
    assert limiter.available(throttlers.EC2_ENDPOINT_MUTATION, account, REGION) <= 0
    # Other families of the same account are untouched.
    assert limiter.available(throttlers.EC2_NON_MUTATING, account, REGION) == 100


async def test_programming_errors_propagate_unclassified() -> None:
    ctx = fake_context(FakeClient({"describe_vpcs": [KeyError("oops")]}))
    with pytest.raises(KeyError):
        await ctx.call("ec2", "DescribeVpcs")


async def test_accept_batches_ids_and_reports_partial_failure() -> None:
    ids = [f"vpce-{i:017x}" for i in range(250)]
    failing = {
        "Unsuccessful": [
            {
                "ResourceId": ids[120],
                "Error": {"Code": "InvalidVpcEndpointId.NotFound", "Message": "gone"},
            }
        ]
    }
    client = FakeClient({"accept_vpc_endpoint_connections": [{}, failing, {}]})
    accepted, unsuccessful = await endpoint_services.accept_connections(
        fake_context(client),
        "vpce-svc-1",
        ids + ids[:10],  # Duplicates are sent once.
    )
    sizes = [len(p["VpcEndpointIds"]) for _, p in client.requests]
    assert sizes == [100, 100, 50]
    assert all(p["ServiceId"] == "vpce-svc-1" for _, p in client.requests)
    assert accepted == [i for i in ids if i != ids[120]]
    assert [u.resource_id for u in unsuccessful] == [ids[120]]
    assert errors.is_not_found(unsuccessful[0].error)


async def test_reject_with_nothing_to_reject_makes_no_call() -> None:
    client = FakeClient()
    assert await endpoint_services.reject_connections(fake_context(client), "vpce-svc-1", []) == (
        [],
        [],
    )
    assert client.requests == []


async def test_delete_service_with_live_connections_raises_the_batch_error() -> None:
    refused = {
        "Unsuccessful": [
            {
                "ResourceId": "vpce-svc-1",
                "Error": {
                    "Code": "ExistingVpcEndpointConnections",
                    "Message": "Service has existing active VPC Endpoint connections",
                },
            }
        ]
    }
    client = FakeClient({"delete_vpc_endpoint_service_configurations": [refused]})
    with pytest.raises(errors.AwsError) as caught:
        await endpoint_services.delete_endpoint_service(fake_context(client), "vpce-svc-1")
    assert caught.value.code == endpoint_services.EXISTING_CONNECTIONS
    assert caught.value.kind is errors.Kind.CONFLICT
    assert caught.value.retryable


async def test_describe_connections_reads_every_page_and_filters_states() -> None:
    def connection(endpoint_id: str, state: str) -> dict[str, str]:
        return {"ServiceId": "vpce-svc-1", "VpcEndpointId": endpoint_id, "VpcEndpointState": state}

    client = FakeClient(
        {
            "describe_vpc_endpoint_connections": [
                {"VpcEndpointConnections": [connection("vpce-1", "pendingAcceptance")]},
                {
                    "VpcEndpointConnections": [
                        connection("vpce-2", "available"),
                        connection("vpce-3", "rejected"),
                    ]
                },
            ]
        }
    )
    ctx = fake_context(client)
    everything = await endpoint_services.describe_endpoint_connections(ctx, "vpce-svc-1")
    assert [c["VpcEndpointId"] for c in everything] == ["vpce-1", "vpce-2", "vpce-3"]
    assert endpoint_services.live_connection_ids(everything) == ["vpce-1", "vpce-2"]
    pending = await endpoint_services.describe_endpoint_connections(
        ctx, "vpce-svc-1", states=["PendingAcceptance"]
    )
    assert [c["VpcEndpointId"] for c in pending] == ["vpce-1"]
    _, params = client.requests[0]
    assert params["Filters"] == [{"Name": "service-id", "Values": ["vpce-svc-1"]}]


async def test_find_endpoint_adopts_the_oldest_live_duplicate() -> None:
    def endpoint(endpoint_id: str, state: str, created: str, uid: str) -> dict[str, Any]:
        return {
            "VpcEndpointId": endpoint_id,
            "State": state,
            "CreationTimestamp": created,
            "Tags": [{"Key": tags.UID_KEY, "Value": uid}],
        }

    client = FakeClient(
        {
            "describe_vpc_endpoints": [
                {
                    "VpcEndpoints": [
                        endpoint("vpce-new", "available", "2026-01-02", "u1"),
                        endpoint("vpce-old", "deleting", "2026-01-01", "u1"),
                        endpoint("vpce-mid", "pendingAcceptance", "2026-01-01T12", "u1"),
                        endpoint("vpce-other", "available", "2025-01-01", "someone-else"),
                    ]
                }
            ]
        }
    )
    found = await endpoints.find_endpoint_by_uid(fake_context(client), "u1")
    assert found is not None
    assert found["VpcEndpointId"] == "vpce-mid"
