"""Consumers connect: cross-account decisions, ENIs/IPs/DNS, visibility, overlapping CIDRs, and
PENDING_ACCEPTANCE never passing for ready."""

from __future__ import annotations

import asyncio
import ipaddress

import botocore.exceptions
import pytest

from tests.conformance.harness import (
    FALSE,
    SC,
    TIMEOUT,
    TRUE,
    Conn,
    Svc,
    Tenant,
    condition,
    eventually,
)

pytestmark = pytest.mark.heavy(seconds=35)


async def test_cross_account_accept_and_reject(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.20.0.0/16")
    welcome, unwelcome = await tenant.account("10.21.0.0/16"), await tenant.account("10.22.0.0/16")
    service = await api.publish(
        "shared",
        tenant.managed_service(provider, allowed=[welcome.account_id, unwelcome.account_id]),
    )
    good = await api.connect("good", tenant.connection(welcome, service=service.name))
    bad = await api.connect("bad", tenant.connection(unwelcome, service=service.name))
    assert good.state == bad.state == Conn.STATE_PENDING_ACCEPTANCE

    accepted = await api.accept(service.name, [good.endpoint_id], reason="ticket OPS-7")
    assert not accepted.failures
    rejected = await api.reject(service.name, [bad.endpoint_id], reason="not a customer")
    assert not rejected.failures

    good = await api.wait_connection(good.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    bad = await api.wait_connection(bad.name, lambda c: c.state == Conn.STATE_REJECTED)
    # In AWS, each consumer sees its own endpoint's fate, in its own account.
    assert (await sim.endpoint(welcome.account_id, good.endpoint_id))["State"] == "available"
    assert (await sim.endpoint(unwelcome.account_id, bad.endpoint_id))["State"] == "rejected"
    # And the provider's connection list says the same.
    provider_ec2 = await sim.client(provider.account_id, "ec2")
    aws_connections = (
        await provider_ec2.describe_vpc_endpoint_connections(
            Filters=[{"Name": "service-id", "Values": [service.service_id]}]
        )
    )["VpcEndpointConnections"]
    assert {c["VpcEndpointId"]: c["VpcEndpointState"] for c in aws_connections} == {
        good.endpoint_id: "available",
        bad.endpoint_id: "rejected",
    }
    inventory = {c.endpoint_id: c for c in await api.inventory(service.name)}
    assert inventory[good.endpoint_id].owner_account_id == welcome.account_id
    assert inventory[good.endpoint_id].decision.verdict == SC.Decision.VERDICT_ACCEPTED
    assert inventory[bad.endpoint_id].owner_account_id == unwelcome.account_id
    assert inventory[bad.endpoint_id].decision.verdict == SC.Decision.VERDICT_REJECTED


async def test_endpoint_enis_ips_and_dns_match_aws(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.23.0.0/16"), await tenant.account("10.24.0.0/16")
    service = await api.publish(
        "api",
        tenant.managed_service(
            provider,
            allowed=[consumer.account_id],
            mode=1,  # MODE_AUTOMATIC
        ),
    )
    created = await api.connect("api", tenant.connection(consumer, service=service.name))
    connection = await api.wait_connection(
        created.name, lambda c: c.state == Conn.STATE_AVAILABLE and not c.reconciling
    )
    assert connection.resolved_service_name == service.service_name

    described = await sim.endpoint(consumer.account_id, connection.endpoint_id)
    assert described["State"] == "available"
    assert described["VpcEndpointType"] == "Interface"
    assert described["VpcId"] == consumer.network.vpc_id
    assert sorted(described["SubnetIds"]) == sorted(consumer.network.subnet_ids)
    # DNS: exactly AWS's entries (regional name first, then one per AZ), with their zone ids.
    assert [(d.dns_name, d.hosted_zone_id) for d in connection.dns_entries] == [
        (d["DnsName"], d["HostedZoneId"]) for d in described["DnsEntries"]
    ]
    assert len(connection.dns_entries) == 1 + len(consumer.network.subnet_ids)
    assert all(service.service_id in d.dns_name for d in connection.dns_entries)
    # ENIs: one per subnet, in the consumer's VPC, with the private IPs AWS assigned.
    ec2 = await sim.client(consumer.account_id, "ec2")
    enis = (
        await ec2.describe_network_interfaces(NetworkInterfaceIds=described["NetworkInterfaceIds"])
    )["NetworkInterfaces"]
    assert {
        (n.network_interface_id, n.subnet_id, n.availability_zone, n.private_ip_address)
        for n in connection.network_interfaces
    } == {
        (e["NetworkInterfaceId"], e["SubnetId"], e["AvailabilityZone"], e["PrivateIpAddress"])
        for e in enis
    }
    assert len(enis) == len(consumer.network.subnet_ids)
    consumer_cidr = ipaddress.ip_network(consumer.network.cidr)
    assert all(ipaddress.ip_address(e["PrivateIpAddress"]) in consumer_cidr for e in enis)
    assert all(e["VpcId"] == consumer.network.vpc_id for e in enis)


async def test_one_way_visibility(tenant: Tenant) -> None:
    """Only allowed principals see the service; the provider sees requests, never the
    consumer's network."""
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.25.0.0/16")
    allowed, stranger = await tenant.account("10.26.0.0/16"), await tenant.account("10.27.0.0/16")
    service = await api.publish(
        "private", tenant.managed_service(provider, allowed=[allowed.account_id], mode=1)
    )
    allowed_ec2 = await sim.client(allowed.account_id, "ec2")
    seen = await allowed_ec2.describe_vpc_endpoint_services(ServiceNames=[service.service_name])
    assert [d["ServiceName"] for d in seen["ServiceDetails"]] == [service.service_name]
    stranger_ec2 = await sim.client(stranger.account_id, "ec2")
    with pytest.raises(botocore.exceptions.ClientError) as hidden:
        await stranger_ec2.describe_vpc_endpoint_services(ServiceNames=[service.service_name])
    assert hidden.value.response["Error"]["Code"] == "InvalidServiceName"

    # linkplane refuses the stranger before AWS would, and creates nothing. (It retries a few
    # times first, as permissions take a moment to propagate in AWS: overlap that wait.)
    refusal = asyncio.create_task(
        api.create_connection(
            "stranger", tenant.connection(stranger, service=service.name), timeout=4 * TIMEOUT
        )
    )
    # The allowed consumer connects; the provider learns of the request but cannot look into
    # the consumer's VPC: the endpoint and its ENIs exist only in the consumer's account.
    created = await api.connect("friend", tenant.connection(allowed, service=service.name))
    friend = await api.wait_connection(created.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    provider_ec2 = await sim.client(provider.account_id, "ec2")
    assert (
        await provider_ec2.describe_vpc_endpoints(
            Filters=[{"Name": "vpc-endpoint-id", "Values": [friend.endpoint_id]}]
        )
    )["VpcEndpoints"] == []
    provider_enis = (
        await provider_ec2.describe_network_interfaces(
            Filters=[{"Name": "vpc-id", "Values": [allowed.network.vpc_id]}]
        )
    )["NetworkInterfaces"]
    assert provider_enis == []
    # The inventory follows the consumer's view within a Service pass.
    [request] = await eventually(lambda: api.inventory(service.name), lambda found: len(found) == 1)
    assert request.endpoint_id == friend.endpoint_id
    assert request.owner_account_id == allowed.account_id

    done = await refusal
    assert done.HasField("error")
    assert "not visible" in done.error.message
    refused = await api.get_connection(api.connection_name("stranger"))
    assert refused.state == Conn.STATE_FAILED and not refused.endpoint_id
    assert refused.last_aws_error.code == "ServiceNotVisible"
    assert await sim.endpoints(stranger.account_id) == []
    assert await sim.requests(stranger.account_id, "CreateVpcEndpoint") == []


async def test_overlapping_cidrs_connect(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.0.0.0/16")
    consumer = await tenant.account("10.0.0.0/16")  # the very same CIDR
    service = await api.publish(
        "overlap", tenant.managed_service(provider, allowed=[consumer.account_id], mode=1)
    )
    created = await api.connect("overlap", tenant.connection(consumer, service=service.name))
    connection = await api.wait_connection(created.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    assert condition(connection, "Ready").status == TRUE
    described = await sim.endpoint(consumer.account_id, connection.endpoint_id)
    assert described["State"] == "available"
    cidr = ipaddress.ip_network("10.0.0.0/16")
    assert connection.network_interfaces
    assert all(
        ipaddress.ip_address(n.private_ip_address) in cidr for n in connection.network_interfaces
    )


async def test_pending_acceptance_is_not_available(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.28.0.0/16"), await tenant.account()
    service = await api.publish(
        "manual", tenant.managed_service(provider, allowed=[consumer.account_id])
    )
    spec = tenant.connection(consumer, service=service.name)
    done = await api.create_connection("waiting", spec)
    # The create Operation completes (linkplane has nothing left to do on its own)...
    assert done.done and not done.HasField("error"), done.error
    answered = Conn()
    done.response.Unpack(answered)
    # ...but the Connection says plainly it is not ready.
    assert answered.state == Conn.STATE_PENDING_ACCEPTANCE
    current = await api.get_connection(answered.name)
    assert current.state == Conn.STATE_PENDING_ACCEPTANCE
    assert condition(current, "Ready").status == FALSE
    assert not current.dns_entries or current.state != Conn.STATE_AVAILABLE
    described = await sim.endpoint(consumer.account_id, current.endpoint_id)
    assert described["State"] == "pendingAcceptance"

    await api.accept(service.name, [current.endpoint_id])
    ready = await api.wait_connection(
        current.name, lambda c: c.state == Conn.STATE_AVAILABLE and not c.reconciling
    )
    assert condition(ready, "Ready").status == TRUE
    assert (await sim.endpoint(consumer.account_id, ready.endpoint_id))["State"] == "available"


async def test_partial_batches_apply_what_they_can(tenant: Tenant) -> None:
    """A bulk decision AWS can only partly apply: applied where it can, refused items named."""
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.29.0.0/16")
    first, second = await tenant.account("10.44.0.0/16"), await tenant.account("10.45.0.0/16")
    service = await api.publish(
        "batch",
        tenant.managed_service(provider, allowed=[first.account_id, second.account_id]),
    )
    taken = await api.connect("taken", tenant.connection(first, service=service.name))
    refused = await api.connect("refused", tenant.connection(second, service=service.name))
    await api.reject(service.name, [refused.endpoint_id], reason="no")
    await api.wait_connection(refused.name, lambda c: c.state == Conn.STATE_REJECTED)

    unknown = "vpce-0123456789abcdef0"
    answer = await api.accept(
        service.name, [taken.endpoint_id, refused.endpoint_id, unknown], reason="batch 1"
    )
    failures = {f.endpoint_id: f for f in answer.failures}
    assert set(failures) == {refused.endpoint_id, unknown}
    assert all(f.code and f.message for f in failures.values())
    decided = {c.endpoint_id: c for c in answer.service_connections}
    assert decided[taken.endpoint_id].decision.verdict == SC.Decision.VERDICT_ACCEPTED
    assert decided[taken.endpoint_id].decision.reason == "batch 1"

    taken_now = await api.wait_connection(taken.name, lambda c: c.state == Conn.STATE_AVAILABLE)
    assert (await sim.endpoint(first.account_id, taken_now.endpoint_id))["State"] == "available"
    assert (await sim.endpoint(second.account_id, refused.endpoint_id))["State"] == "rejected"
    inventory = {c.endpoint_id: c for c in await api.inventory(service.name)}
    # The refused item keeps its earlier decision.
    assert inventory[refused.endpoint_id].decision.verdict == SC.Decision.VERDICT_REJECTED
    assert inventory[refused.endpoint_id].decision.reason == "no"

    # The same for a reject batch: the live one is rejected, the unknown one reported.
    rejection = await api.reject(service.name, [taken.endpoint_id, unknown], reason="batch 2")
    assert [f.endpoint_id for f in rejection.failures] == [unknown]
    await api.wait_connection(taken.name, lambda c: c.state == Conn.STATE_REJECTED)
    assert (await sim.endpoint(first.account_id, taken.endpoint_id))["State"] == "rejected"


async def test_failed_and_expired_endpoints_are_never_ready(tenant: Tenant) -> None:
    """States AWS gives no way to cause (injected in the simulator) end the create, clearly."""
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.46.0.0/16"), await tenant.account()
    service = await api.publish(
        "flaky", tenant.managed_service(provider, allowed=[consumer.account_id])
    )
    # AWS fails to provision the next endpoint of this consumer.
    await sim.admin(
        "POST",
        "endpoint-outcomes",
        {
            "state": "failed",
            "account": consumer.account_id,
            "code": "InsufficientFreeAddressesInSubnet",
            "message": "no free addresses in the subnet",
        },
    )
    done = await api.create_connection("doomed", tenant.connection(consumer, service=service.name))
    assert done.HasField("error")
    failed = await api.get_connection(api.connection_name("doomed"))
    assert failed.state == Conn.STATE_FAILED
    assert failed.last_aws_error.code == "InsufficientFreeAddressesInSubnet"
    assert condition(failed, "Ready").status == FALSE
    described = await sim.endpoint(consumer.account_id, failed.endpoint_id)
    assert described["State"] == "failed"
    assert described["LastError"]["Code"] == "InsufficientFreeAddressesInSubnet"

    # A request nobody decides on expires.
    other = await tenant.account("10.47.0.0/16")
    await api.update_service(
        Svc(name=service.name, allowed_principals=[consumer.account_id, other.account_id]),
        "allowed_principals",
    )
    waiting = await api.connect("ignored", tenant.connection(other, service=service.name))
    assert waiting.state == Conn.STATE_PENDING_ACCEPTANCE
    await sim.admin(
        "POST", "endpoint-state", {"endpoint_id": waiting.endpoint_id, "state": "expired"}
    )
    expired = await api.wait_connection(waiting.name, lambda c: c.state == Conn.STATE_EXPIRED)
    assert condition(expired, "Ready").status == FALSE
    assert (await sim.endpoint(other.account_id, waiting.endpoint_id))["State"] == "expired"
    row = await eventually(
        lambda: api.inventory(service.name, filter=f'owner_account_id = "{other.account_id}"'),
        lambda found: [c.state for c in found] == [SC.STATE_EXPIRED],
    )
    assert row[0].endpoint_id == waiting.endpoint_id
