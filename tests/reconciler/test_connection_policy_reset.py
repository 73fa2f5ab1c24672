"""An emptied `policy_document` resets the endpoint's policy to AWS's default (ModifyVpcEndpoint
ResetPolicy), instead of leaving the last policy in place."""

from __future__ import annotations

import asyncio
import json
import uuid

from google.protobuf import field_mask_pb2

from linkplane.sim import server as sim_server
from linkplane.v1 import connection_pb2, consumer_service_pb2
from tests.reconciler.conftest import CONSUMER, wait_done
from tests.reconciler.test_connection_kinds import (
    SQS,
    consumer,
    create,
    delete,
    get,
    own_network,
    sim_endpoint,
)

Conn = connection_pb2.Connection
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}
    ],
}
FULL_ACCESS = [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]


async def test_emptying_the_policy_document_resets_the_endpoint_policy(api, networks, project, sim):
    await api.register(project, CONSUMER)
    network = own_network(sim)
    name = f"projects/{project}/connections/limited"
    op = await create(
        api,
        project,
        "limited",
        consumer(
            project, network, service_name=SQS, subnet_ids=network["subnet_ids"],
            policy_document=json.dumps(POLICY),
        ),
    )  # fmt: skip
    done = await wait_done(api, op.name, 60.0)
    assert not done.HasField("error"), done.error
    connection = await get(api, name)
    assert json.loads((await sim_endpoint(sim, connection.endpoint_id))["PolicyDocument"]) == POLICY

    update = await api.consumer.UpdateConnection(
        consumer_service_pb2.UpdateConnectionRequest(
            connection=Conn(name=name, policy_document=""),
            update_mask=field_mask_pb2.FieldMask(paths=["policy_document"]),
            request_id=str(uuid.uuid4()),
        )
    )
    done = await wait_done(api, update.name, 60.0)
    assert not done.HasField("error"), done.error
    endpoint = await sim_endpoint(sim, connection.endpoint_id)
    assert json.loads(endpoint["PolicyDocument"])["Statement"] == FULL_ACCESS
    assert modifies(sim) >= 1, "the reset went to AWS"
    # Settled: the default policy is not reset again on the next passes (resync every 2 s).
    count = modifies(sim)
    await asyncio.sleep(5.0)
    settled = await get(api, name)
    assert settled.state == Conn.STATE_AVAILABLE
    assert not [c for c in settled.conditions if c.type == "Stalled"]
    assert modifies(sim) == count
    await delete(api, name)


def modifies(sim: sim_server.SimHandle) -> int:
    return sum(
        1
        for r in sim.requests()
        if r["action"] == "ModifyVpcEndpoint" and r["account"] == CONSUMER and r["outcome"] == "ok"
    )
