"""Consumer private DNS converges with a bounded number of ModifyVpcEndpoint calls, waits for
the provider's verification, and a change AWS does not keep becomes a `Stalled` condition
instead of a loop (issue 8: 2,357 ModifyVpcEndpoint calls in 11 minutes)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from linkplane.server.reconciler import stalls
from linkplane.v1 import (
    common_pb2,
    connection_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.reconciler.conftest import (
    CONSUMER,
    PROVIDER,
    eventually,
    managed_service,
    publish,
    wait_done,
)
from tests.reconciler.test_connection_kinds import (
    SQS,
    consumer,
    create,
    delete,
    get,
    modify_calls,
    own_network,
    sim_endpoint,
)
from tests.support import simulator

Conn = connection_pb2.Connection
TRUE = common_pb2.Condition.STATUS_TRUE


def conditions(connection: Conn) -> dict[str, Any]:
    return {c.type: c for c in connection.conditions}


async def publish_txt(sim: Any, domain: str, name: str, value: str, project: str) -> None:
    async with simulator.acting_as(sim.endpoint_url, PROVIDER, "route53") as route53:
        zone = await route53.create_hosted_zone(Name=domain, CallerReference=project)
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


async def test_private_dns_waits_for_verification_then_converges_in_one_modify(
    api, networks, project, sim
):
    await api.register(project, PROVIDER, CONSUMER)
    domain = f"{project}.example.com"
    spec = managed_service(project, networks, mode=service_pb2.AcceptancePolicy.MODE_AUTOMATIC)
    spec.private_dns_name = f"api.{domain}"
    service = await publish(api, project, "dns", spec)
    network = own_network(sim)
    before = modify_calls(sim)

    # Not verified yet: the endpoint is available without private DNS, and says why.
    op = await create(
        api,
        project,
        "to-dns",
        consumer(
            project, network, service=service.name, subnet_ids=network["subnet_ids"],
            private_dns_enabled=True,
        ),
    )  # fmt: skip
    done = await wait_done(api, op.name, 60.0)
    assert not done.HasField("error"), done.error
    name = f"projects/{project}/connections/to-dns"
    waiting = await eventually(
        lambda: get(api, name), lambda c: c.state == Conn.STATE_AVAILABLE, timeout=60.0
    )
    assert conditions(waiting)["PrivateDns"].reason == "AwaitingVerification"
    assert conditions(waiting)["Ready"].status == TRUE
    endpoint = await sim_endpoint(sim, waiting.endpoint_id)
    assert endpoint["PrivateDnsEnabled"] is False
    assert modify_calls(sim) == before

    # The provider publishes the TXT record and asks for verification.
    record = (
        await eventually(
            lambda: api.provider.GetService(
                provider_service_pb2.GetServiceRequest(name=service.name)
            ),
            lambda s: bool(s.private_dns_verification.txt_record_value),
        )
    ).private_dns_verification
    await publish_txt(sim, domain, record.txt_record_name, record.txt_record_value, project)
    verify = await api.provider.VerifyServicePrivateDns(
        provider_service_pb2.VerifyServicePrivateDnsRequest(
            name=service.name, request_id=str(uuid.uuid4())
        )
    )
    verified = await wait_done(api, verify.name, 60.0)
    assert not verified.HasField("error"), verified.error

    # The connection notices within a resync, enables private DNS once, and is done.
    enabled = await eventually(
        lambda: get(api, name),
        lambda c: (
            conditions(c)["PrivateDns"].reason == "Enabled"
            and conditions(c)["Ready"].status == TRUE
        ),
        timeout=60.0,
    )
    endpoint = await sim_endpoint(sim, enabled.endpoint_id)
    assert endpoint["PrivateDnsEnabled"] is True
    assert f"api.{domain}" in {d["DnsName"] for d in endpoint["DnsEntries"]}
    # Several resyncs later: still exactly one ModifyVpcEndpoint, no loop.
    await asyncio.sleep(3.0)
    assert modify_calls(sim) - before == 1
    assert "Stalled" not in conditions(await get(api, name))
    await delete(api, name)


async def test_a_change_aws_does_not_keep_is_reported_stalled_not_looped(
    api, networks, project, sim
):
    await api.register(project, CONSUMER)
    network = own_network(sim)
    op = await create(
        api,
        project,
        "fought",
        consumer(
            project, network, service_name=SQS, subnet_ids=network["subnet_ids"],
            private_dns_enabled=True,
        ),
    )  # fmt: skip
    done = await wait_done(api, op.name, 60.0)
    assert not done.HasField("error"), done.error
    name = f"projects/{project}/connections/fought"
    endpoint_id = (await get(api, name)).endpoint_id
    before = modify_calls(sim)
    reverts = 0

    # Something outside linkplane turns private DNS off again whenever it is on: AWS accepts
    # each of linkplane's ModifyVpcEndpoint calls, but the next observation never keeps it.
    async def revert_forever() -> None:
        nonlocal reverts
        async with simulator.acting_as(sim.endpoint_url, CONSUMER, "ec2") as ec2:
            while True:
                found = await ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
                if found["VpcEndpoints"][0]["PrivateDnsEnabled"]:
                    await ec2.modify_vpc_endpoint(
                        VpcEndpointId=endpoint_id, PrivateDnsEnabled=False
                    )
                    reverts += 1
                await asyncio.sleep(0.02)

    fighter = asyncio.create_task(revert_forever())
    try:
        stalled = await eventually(
            lambda: get(api, name),
            lambda c: "Stalled" in conditions(c) and conditions(c)["Stalled"].status == TRUE,
            timeout=90.0,
        )
        message = conditions(stalled)["Stalled"].message
        assert "PrivateDnsEnabled" in message and "true" in message and "false" in message
        assert conditions(stalled)["Ready"].reason == "Stalled"
        # Backing off: a few more seconds of the fight add no calls beyond the ceiling.
        await asyncio.sleep(3.0)
        linkplane_calls = modify_calls(sim) - before - reverts
        assert 1 <= linkplane_calls <= stalls.HOURLY_CEILING, linkplane_calls
    finally:
        fighter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fighter
    await delete(api, name)
