"""Drift: an interface endpoint deleted by hand in AWS is recreated within one resync.

The deletion is done the way a person would, outside linkplane: the consumer account's own
credentials (STS AssumeRole at the simulator) and DeleteVpcEndpoints.
"""

from __future__ import annotations

import time

from linkplane.v1 import connection_pb2, consumer_service_pb2, service_pb2
from tests.reconciler.conftest import (
    CONSUMER,
    PROVIDER,
    connection_spec,
    eventually,
    managed_service,
    publish,
    wait_done,
)
from tests.support import simulator

Conn = connection_pb2.Connection
RESYNC_SECONDS = 2.0  # worker_settings' resync_interval_seconds


async def delete_out_of_band(endpoint_url: str, account: str, endpoint_id: str) -> None:
    async with simulator.acting_as(endpoint_url, account, "ec2") as ec2:
        answer = await ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
        assert not answer.get("Unsuccessful"), answer


async def test_endpoint_deleted_out_of_band_is_recreated(api, networks, project, sim):
    await api.register(project, PROVIDER, CONSUMER)
    published = await publish(
        api,
        project,
        "drifty",
        managed_service(
            project, networks, accept_rules=[service_pb2.AcceptRule(principal=CONSUMER)]
        ),
    )
    name = f"projects/{project}/connections/victim"
    created = await api.consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}",
            connection_id="victim",
            connection=connection_spec(project, networks[CONSUMER], published.name),
        )
    )
    done = await wait_done(api, created.name)
    assert not done.HasField("error"), done.error

    async def get() -> Conn:
        return await api.consumer.GetConnection(
            consumer_service_pb2.GetConnectionRequest(name=name)
        )

    before = await eventually(get, lambda c: c.state == Conn.STATE_AVAILABLE and not c.reconciling)
    assert not [c for c in before.conditions if c.type == "Drift"]

    await delete_out_of_band(sim.endpoint_url, CONSUMER, before.endpoint_id)
    deleted_at = time.monotonic()
    # Within one resync (plus the time to create and provision a new endpoint, scaled).
    after = await eventually(
        get,
        lambda c: (
            c.endpoint_id
            and c.endpoint_id != before.endpoint_id
            and c.state == Conn.STATE_AVAILABLE
        ),
        timeout=RESYNC_SECONDS + 8.0,
    )
    noticed = time.monotonic() - deleted_at
    drift = [c for c in after.conditions if c.type == "Drift"]
    assert drift and drift[0].status == drift[0].STATUS_TRUE, after.conditions
    assert drift[0].reason == "EndpointDeletedOutOfBand"
    assert before.endpoint_id in drift[0].message
    assert after.network_interfaces and after.dns_entries
    print(f"drift repaired {noticed:.2f}s after the out-of-band delete")

    endpoints = [
        e
        for e in sim.objects(account=CONSUMER)["endpoints"]
        if e["tags"].get("linkplane:uid") == after.uid
    ]
    live = [e for e in endpoints if str(e["state"]).lower() not in {"deleting", "deleted"}]
    assert [e["id"] for e in live] == [after.endpoint_id]
