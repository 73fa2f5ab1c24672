"""A consumer Region the target service does not support is refused at once, with linkplane's
own permanent `UnsupportedRegion` naming the Regions, before the visibility check (AWS hides a
service from the Regions it does not support, so visibility alone would only say "not visible"
and retry for permissions to propagate)."""

from __future__ import annotations

import uuid
from typing import Any

from linkplane.sim import server as sim_server
from linkplane.v1 import connection_pb2, service_pb2
from tests.reconciler.conftest import (
    CONSUMER,
    OTHER_CONSUMER,
    PROVIDER,
    REGION,
    managed_service,
    publish,
    wait_done,
)
from tests.reconciler.test_connection_kinds import create, get

Conn = connection_pb2.Connection
AUTOMATIC = service_pb2.AcceptancePolicy.MODE_AUTOMATIC
WEST = "us-west-2"
EAST_2 = "us-east-2"


def west_network(sim: sim_server.SimHandle, account: str = CONSUMER) -> dict[str, Any]:
    octet = uuid.uuid4().int % 200 + 20
    return sim_server.seed_network(sim, account_id=account, region=WEST, cidr=f"10.{octet}.0.0/16")


def endpoint_creates(sim: sim_server.SimHandle, account: str) -> int:
    return sum(
        1 for r in sim.requests() if r["action"] == "CreateVpcEndpoint" and r["account"] == account
    )


async def failed_with(api: Any, project: str, connection_id: str, connection: Conn) -> Conn:
    op = await create(api, project, connection_id, connection)
    # Generous: on a busy machine a package-mate's hundreds of resources share the workers.
    done = await wait_done(api, op.name, 180.0)
    assert done.HasField("error"), "the create must fail"
    failed = await get(api, f"projects/{project}/connections/{connection_id}")
    assert failed.state == Conn.STATE_FAILED
    assert not failed.endpoint_id
    return failed


def from_west(
    project: str, network: dict[str, Any], account: str = CONSUMER, **fields: Any
) -> Conn:
    return Conn(
        consumer_account=f"projects/{project}/accounts/{account}",
        region=WEST,
        vpc_id=network["vpc_id"],
        subnet_ids=network["subnet_ids"],
        **fields,
    )


async def test_a_linkplane_service_refuses_an_unsupported_region_at_once(
    api, networks, project, sim
):
    await api.register(project, PROVIDER, CONSUMER)
    spec = managed_service(project, networks, mode=AUTOMATIC)
    spec.supported_regions[:] = [EAST_2]
    service = await publish(api, project, "east", spec)
    network = west_network(sim)
    creates = endpoint_creates(sim, CONSUMER)

    failed = await failed_with(
        api,
        project,
        "far",
        from_west(project, network, service=service.name, service_region=REGION),
    )
    assert failed.last_aws_error.code == "UnsupportedRegion"
    message = failed.last_aws_error.message
    assert WEST in message and REGION in message and EAST_2 in message, message

    # Without service_region the Service's own Region is used, and refused just the same.
    failed = await failed_with(
        api, project, "far-implicit", from_west(project, network, service=service.name)
    )
    assert failed.last_aws_error.code == "UnsupportedRegion"
    assert endpoint_creates(sim, CONSUMER) == creates


async def test_a_service_name_hidden_only_from_the_consumer_region_is_unsupported(
    api, networks, project, sim
):
    await api.register(project, PROVIDER, CONSUMER, OTHER_CONSUMER)
    service = await publish(
        api, project, "named", managed_service(project, networks, mode=AUTOMATIC)
    )
    network = west_network(sim)
    failed = await failed_with(
        api,
        project,
        "by-name",
        from_west(project, network, service_name=service.service_name, service_region=REGION),
    )
    # Visible to the consumer in us-east-1, hidden in us-west-2: the Region, not permissions.
    assert failed.last_aws_error.code == "UnsupportedRegion"
    assert WEST in failed.last_aws_error.message
    assert service.service_name in failed.last_aws_error.message

    # An account the provider does not allow sees it nowhere: that stays "not visible".
    stranger = west_network(sim, OTHER_CONSUMER)
    refused = await failed_with(
        api,
        project,
        "stranger",
        from_west(
            project,
            stranger,
            OTHER_CONSUMER,
            service_name=service.service_name,
            service_region=REGION,
        ),
    )
    assert refused.last_aws_error.code == "ServiceNotVisible"
