"""Service features end to end, through the gRPC API against the simulator: private DNS
re-checks and VerifyServicePrivateDns, partial bulk decisions, the inventory's VPC ids and
counts, and lpctl's publishing flags (IPv6 and Regions are in test_service_addressing.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from linkplane.client import ClientConfig, errors
from linkplane.client.aio import AsyncClient
from linkplane.v1 import (
    common_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.reconciler.conftest import (
    CONSUMER,
    PROVIDER,
    REGION,
    connection_spec,
    eventually,
    managed_service,
    publish,
    wait_done,
)
from tests.support import simulator

pytestmark = pytest.mark.heavy(seconds=45)

SC = service_pb2.ServiceConnection
DNS = service_pb2.PrivateDnsVerification
IPV4, IPV6 = common_pb2.IP_ADDRESS_TYPE_IPV4, common_pb2.IP_ADDRESS_TYPE_IPV6


def calls(sim: Any, action: str, since: float, account: str = PROVIDER) -> list[dict[str, Any]]:
    """The simulator's record of `action` calls by `account` since `since` (epoch seconds)."""
    return [
        r
        for r in sim.requests()
        if r["action"] == action and r["account"] == account and r["time"] >= since
    ]


async def described(sim: Any, service_id: str) -> dict[str, Any]:
    """The endpoint service as the provider sees it in AWS (the simulator)."""
    async with simulator.acting_as(sim.endpoint_url, PROVIDER, "ec2") as ec2:
        found = await ec2.describe_vpc_endpoint_service_configurations(ServiceIds=[service_id])
    return dict(found["ServiceConfigurations"][0])


async def get(api: Any, name: str) -> service_pb2.Service:
    return await api.provider.GetService(provider_service_pb2.GetServiceRequest(name=name))


async def update(api: Any, service: service_pb2.Service, *paths: str) -> Any:
    return await api.provider.UpdateService(
        provider_service_pb2.UpdateServiceRequest(
            service=service, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
        )
    )


async def settle_for(sim: Any, seconds: float) -> None:
    """Poll until the simulator has seen traffic `seconds` from now (the reconciler keeps
    resyncing), so absence of a call over that window means something."""
    until = time.time() + seconds
    await eventually(lambda: _latest(sim), lambda latest: latest >= until, timeout=seconds + 60)


async def _latest(sim: Any) -> float:
    return max((float(r["time"]) for r in sim.requests()), default=0.0)


async def create_txt_record(sim: Any, project: str, name: str, value: str) -> None:
    async with simulator.acting_as(sim.endpoint_url, PROVIDER, "route53") as route53:
        zone = await route53.create_hosted_zone(
            Name=f"{project}.example.com", CallerReference=uuid.uuid4().hex
        )
        await route53.change_resource_record_sets(
            HostedZoneId=zone["HostedZone"]["Id"],
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": "TXT",
                            "TTL": 300,
                            "ResourceRecords": [{"Value": f'"{value}"'}],
                        },
                    }
                ]
            },
        )


async def dns_service(api: Any, networks: Any, project: str, service_id: str) -> Any:
    await api.register(project, PROVIDER)
    spec = managed_service(project, networks)
    spec.private_dns_name = f"api.{project}.example.com"
    service = await publish(api, project, service_id, spec)
    return await eventually(
        lambda: get(api, service.name),
        lambda s: s.private_dns_verification.state == DNS.STATE_FAILED,
    )


async def test_private_dns_is_rechecked_after_the_txt_record_appears(api, networks, project, sim):
    failed = await dns_service(api, networks, project, "recheck")
    record = failed.private_dns_verification
    started = time.time()
    await create_txt_record(sim, project, record.txt_record_name, record.txt_record_value)

    # No update, no request: linkplane asks AWS again by itself (12 transitional intervals,
    # 2.4 s here, doubling up to 12 resyncs).
    verified = await eventually(
        lambda: get(api, failed.name),
        lambda s: s.private_dns_verification.state == DNS.STATE_VERIFIED,
        timeout=60,
    )
    assert verified.generation == failed.generation
    condition = {c.type: c for c in verified.conditions}["PrivateDnsVerified"]
    assert condition.status == condition.STATUS_TRUE
    asked = calls(sim, "StartVpcEndpointServicePrivateDnsVerification", started)
    assert 1 <= len(asked) <= 4, asked

    # Verified: no more asking.
    await settle_for(sim, 4 * 2.0)
    later = calls(sim, "StartVpcEndpointServicePrivateDnsVerification", time.time() - 6.0)
    assert later == []


async def test_a_provider_can_ask_for_verification_now(api, networks, project, sim, control_plane):
    failed = await dns_service(api, networks, project, "ask")
    record = failed.private_dns_verification
    config = ClientConfig(address=f"127.0.0.1:{control_plane.port}")
    async with AsyncClient(config) as client:
        # Without the record AWS finds nothing: the Operation fails naming the record.
        op = await client.verify_service_private_dns(name=failed.name)
        with pytest.raises(errors.OperationFailed) as caught:
            await op.result(timeout=30)
        assert caught.value.error.reason == "PRIVATE_DNS_NOT_VERIFIED"
        assert record.txt_record_name in caught.value.message

        await create_txt_record(sim, project, record.txt_record_name, record.txt_record_value)
        started = time.time()
        op = await client.verify_service_private_dns(name=failed.name)
        verified = await op.result(timeout=30)
    assert verified.private_dns_verification.state == DNS.STATE_VERIFIED
    assert calls(sim, "StartVpcEndpointServicePrivateDnsVerification", started)


async def test_bulk_accept_applies_what_it_can_and_reports_the_rest(api, networks, project, sim):
    await api.register(project, PROVIDER, CONSUMER)
    service = await publish(api, project, "bulk", managed_service(project, networks))
    names = []
    for connection_id in ("first", "second"):
        created = await api.consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}",
                connection_id=connection_id,
                connection=connection_spec(project, networks[CONSUMER], service.name),
            )
        )
        await wait_done(api, created.name)
        names.append(f"projects/{project}/connections/{connection_id}")
    inventory = await eventually(
        lambda: api.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(parent=service.name)
        ),
        lambda r: (
            len(r.service_connections) == 2
            and all(c.state == SC.STATE_PENDING_ACCEPTANCE for c in r.service_connections)
        ),
    )
    first, second = (c.endpoint_id for c in inventory.service_connections)
    rejected = await api.provider.RejectServiceConnections(
        provider_service_pb2.RejectServiceConnectionsRequest(
            service=service.name, endpoint_ids=[second], reason="not this one"
        )
    )
    assert not (await wait_done(api, rejected.name)).HasField("error")
    await eventually(
        lambda: api.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(
                parent=service.name, filter="state = REJECTED"
            )
        ),
        lambda r: [c.endpoint_id for c in r.service_connections] == [second],
    )

    unknown = "vpce-0123456789abcdef0"
    accepted = await api.provider.AcceptServiceConnections(
        provider_service_pb2.AcceptServiceConnectionsRequest(
            service=service.name, endpoint_ids=[first, second, unknown], reason="partial"
        )
    )
    done = await wait_done(api, accepted.name)
    assert not done.HasField("error"), done.error
    response = provider_service_pb2.AcceptServiceConnectionsResponse()
    done.response.Unpack(response)
    assert {f.endpoint_id: f.code for f in response.failures} == {
        second: "IncorrectState",
        unknown: "EndpointNotFound",
    }
    listed = {c.endpoint_id: c for c in response.service_connections}
    assert listed[first].decision.verdict == SC.Decision.VERDICT_ACCEPTED
    assert listed[first].decision.reason == "partial"
    # The refused one keeps its earlier decision.
    assert listed[second].decision.verdict == SC.Decision.VERDICT_REJECTED
    assert listed[second].decision.reason == "not this one"

    # AWS accepted the one that could be: the simulator shows it past pendingAcceptance.
    def endpoint_state(endpoint_id: str) -> str:
        for endpoint in sim.objects(account=CONSUMER)["endpoints"]:
            if endpoint["id"] == endpoint_id:
                return str(endpoint["state"]).lower()
        return ""

    async def states_now() -> tuple[str, str]:
        return endpoint_state(first), endpoint_state(second)

    await eventually(states_now, lambda s: s[0] in {"pending", "available"} and s[1] == "rejected")


async def test_inventory_names_vpcs_and_the_counts_add_up(api, networks, project, sim):
    await api.register(project, PROVIDER, CONSUMER)
    service = await publish(
        api,
        project,
        "counted",
        managed_service(
            project, networks, accept_rules=[service_pb2.AcceptRule(principal=CONSUMER)]
        ),
    )
    for connection_id in ("stays", "goes"):
        created = await api.consumer.CreateConnection(
            consumer_service_pb2.CreateConnectionRequest(
                parent=f"projects/{project}",
                connection_id=connection_id,
                connection=connection_spec(project, networks[CONSUMER], service.name),
            )
        )
        await wait_done(api, created.name)
    inventory = await eventually(
        lambda: api.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(parent=service.name)
        ),
        lambda r: (
            len(r.service_connections) == 2
            and all(c.state == SC.STATE_AVAILABLE for c in r.service_connections)
        ),
    )
    assert {c.vpc_id for c in inventory.service_connections} == {networks[CONSUMER]["vpc_id"]}
    assert {c.connection for c in inventory.service_connections} == {
        f"projects/{project}/connections/stays",
        f"projects/{project}/connections/goes",
    }

    deleted = await api.consumer.DeleteConnection(
        consumer_service_pb2.DeleteConnectionRequest(name=f"projects/{project}/connections/goes")
    )
    await wait_done(api, deleted.name, timeout=60)

    def adds_up(counts: service_pb2.ConnectionCounts) -> bool:
        return counts.total == (
            counts.pending_acceptance
            + counts.pending
            + counts.available
            + counts.rejected
            + counts.failed
            + counts.deleted
        )

    counted = await eventually(
        lambda: get(api, service.name),
        lambda s: s.connection_counts.deleted == 1 and s.connection_counts.available == 1,
    )
    assert counted.connection_counts.total == 2
    assert adds_up(counted.connection_counts)
    # The simulator still reports the deleted endpoint's connection, which is what is counted.
    gone = [
        e for e in sim.objects(account=CONSUMER)["endpoints"] if e["state"].lower() == "deleted"
    ]
    assert gone


async def lpctl(control_plane: Any, project: str, *args: str) -> tuple[int, str, str]:
    """Run lpctl as a user would, against the running server (without blocking its loop)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINKPLANE_")}
    environment["LINKPLANE_ADDRESS"] = f"127.0.0.1:{control_plane.port}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "linkplane.client.cli",
        "-p",
        project,
        "-o",
        "json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_lpctl_publishes_ip_types_and_regions_and_asks_for_dns_verification(
    api, networks, project, sim, control_plane
):
    await api.register(project, PROVIDER)
    subnets = [arg for s in networks[PROVIDER]["subnet_ids"] for arg in ("--subnet", s)]
    code, out, err = await lpctl(
        control_plane,
        project,
        "services", "publish", "cli-dual",
        "--account", PROVIDER, "--region", REGION, *subnets,
        "--listener", "443/tcp", "--target", "10.1.0.10",
        "--ip-type", "ipv4", "--ip-type", "ipv6", "--supported-region", "us-west-2",
        "--private-dns-name", f"api.{project}.example.com",
        "--wait", "--wait-timeout", "120",
    )  # fmt: skip
    assert code == 0, err
    published = json.loads(out)
    assert published["supportedIpAddressTypes"] == ["IP_ADDRESS_TYPE_IPV4", "IP_ADDRESS_TYPE_IPV6"]
    assert published["supportedRegions"] == ["us-west-2"]
    config = await described(sim, published["serviceId"])
    assert sorted(config["SupportedIpAddressTypes"]) == ["ipv4", "ipv6"]
    assert "us-west-2" in {r["Region"] for r in config["SupportedRegions"]}

    # No TXT record: AWS finds nothing, and the command says so.
    code, out, err = await lpctl(
        control_plane, project, "services", "verify-dns", "cli-dual", "--wait"
    )
    assert code != 0
    assert "PRIVATE_DNS_NOT_VERIFIED" in err or "did not find" in err, err

    code, out, err = await lpctl(
        control_plane, project, "services", "update", "cli-dual", "--clear-supported-regions",
        "--wait", "--wait-timeout", "120",
    )  # fmt: skip
    assert code == 0, err
    assert "us-west-2" not in {
        r["Region"]
        for r in (await described(sim, published["serviceId"])).get("SupportedRegions", [])
        if r.get("ServiceState", "").lower() not in {"closed", "deleting", "deleted"}
    }

    # Gone again (an unverified private DNS name would keep being re-checked otherwise).
    code, out, err = await lpctl(
        control_plane, project, "services", "delete", "cli-dual", "--force", "--wait",
        "--wait-timeout", "120",
    )  # fmt: skip
    assert code == 0, err
    async with simulator.acting_as(sim.endpoint_url, PROVIDER, "ec2") as ec2:
        left = await ec2.describe_vpc_endpoint_service_configurations()
    assert published["serviceId"] not in {
        s["ServiceId"]
        for s in left["ServiceConfigurations"]
        if s["ServiceState"].lower() not in {"deleting", "deleted"}
    }
