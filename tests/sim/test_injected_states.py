"""Failed / Expired / Partial endpoint states, injected through the admin API (item 6)."""

import json
import urllib.error
import urllib.request

import pytest


def _admin(sim, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{sim.admin_url}/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def _describe(account, endpoint_id):
    found = await account.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    return found["VpcEndpoints"][0]


async def test_force_an_existing_endpoint_into_failed_then_delete_it(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=["*"])
    endpoint = await aws.endpoint(consumer, service["ServiceName"])
    endpoint_id = endpoint["VpcEndpointId"]
    _admin(
        aws.sim,
        "POST",
        "endpoint-state",
        {"endpoint_id": endpoint_id, "state": "failed", "message": "Insufficient capacity"},
    )
    failed = await _describe(consumer, endpoint_id)
    assert failed["State"] == "failed"
    assert failed["FailureReason"] == "Insufficient capacity"
    assert failed["LastError"] == {"Code": "InternalError", "Message": "Insufficient capacity"}
    # The provider cannot accept a failed connection; the consumer can delete it.
    accepted = await provider.ec2.accept_vpc_endpoint_connections(
        ServiceId=service["ServiceId"], VpcEndpointIds=[endpoint_id]
    )
    assert accepted["Unsuccessful"][0]["Error"]["Code"] == "IncorrectState"
    # Hold `deleting` still long enough to observe it (30 ms at the package's time scale: a
    # busy machine's next request came after the endpoint was gone, once).
    aws.sim.set_time_scale(1.0)
    deleted = await consumer.ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    assert deleted["Unsuccessful"] == []
    assert (await _describe(consumer, endpoint_id))["State"] == "deleting"

    with pytest.raises(urllib.error.HTTPError) as error:
        _admin(aws.sim, "POST", "endpoint-state", {"endpoint_id": "vpce-nope", "state": "failed"})
    assert error.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as error:
        _admin(aws.sim, "POST", "endpoint-state", {"endpoint_id": endpoint_id, "state": "odd"})
    assert error.value.code == 400


async def test_expired_pending_acceptance_and_partial_via_the_handle(aws):
    provider = await aws.account(aws.PROVIDER)
    consumer = await aws.account(aws.CONSUMER)
    service = await aws.service(provider, allow=["*"])
    endpoint = await aws.endpoint(consumer, service["ServiceName"])
    aws.sim.set_endpoint_state(endpoint["VpcEndpointId"], "expired")
    assert (await _describe(consumer, endpoint["VpcEndpointId"]))["State"] == "expired"
    connections = await provider.ec2.describe_vpc_endpoint_connections(
        Filters=[{"Name": "vpc-endpoint-state", "Values": ["expired"]}]
    )
    assert [c["VpcEndpointId"] for c in connections["VpcEndpointConnections"]] == [
        endpoint["VpcEndpointId"]
    ]
    other = await aws.endpoint(consumer, "com.amazonaws.us-east-1.sqs")
    aws.sim.set_endpoint_state(
        other["VpcEndpointId"], "partial", code="PartialFailure", message="one subnet failed"
    )
    partial = await _describe(consumer, other["VpcEndpointId"])
    assert partial["State"] == "partial"
    assert partial["LastError"] == {"Code": "PartialFailure", "Message": "one subnet failed"}
    # An expired connection no longer blocks deleting the service.
    deleted = await provider.ec2.delete_vpc_endpoint_service_configurations(
        ServiceIds=[service["ServiceId"]]
    )
    assert deleted["Unsuccessful"] == []


async def test_armed_outcome_applies_to_the_next_matching_endpoint_only(aws):
    consumer = await aws.account(aws.CONSUMER)
    armed = _admin(
        aws.sim,
        "POST",
        "endpoint-outcomes",
        {
            "state": "failed",
            "account": aws.CONSUMER,
            "service_name": "com.amazonaws.us-east-1.sqs",
            "code": "VpcEndpointFailed",
            "message": "Endpoint creation failed",
        },
    )
    assert armed[0]["count"] == 1
    sns = await aws.endpoint(consumer, "com.amazonaws.us-east-1.sns")
    assert sns["State"] == "pending"
    sqs = await aws.endpoint(consumer, "com.amazonaws.us-east-1.sqs")
    assert sqs["State"] == "failed"
    assert sqs["LastError"]["Code"] == "VpcEndpointFailed"
    # Consumed, and a failed endpoint stays failed (no transition to available).
    assert _admin(aws.sim, "GET", "endpoint-outcomes") == []
    again = await aws.endpoint(consumer, "com.amazonaws.us-east-1.kms")
    assert again["State"] == "pending"
    await aws.eventually(lambda: aws.endpoint_state(consumer, again["VpcEndpointId"]), "available")
    assert (await _describe(consumer, sqs["VpcEndpointId"]))["State"] == "failed"
