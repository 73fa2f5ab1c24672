"""Generated requests of every shape: linkplane answers with a deliberate status, never
INTERNAL or UNKNOWN, and an INVALID_ARGUMENT always names at least one field."""

from __future__ import annotations

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkplane.v1 import (
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.api.conftest import details

DELIBERATE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}

text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            "projects/fuzz",
            "projects/fuzz/accounts/111111111111",
            "us-east-1",
            "*",
            "subnet-0123456789abcdef0",
            "vpc-0123456789abcdef0",
            "arn:aws:iam::111111111111:root",
            "projects/fuzz/services/a",
            "com.amazonaws.us-east-1.sqs",
            "projects/Bad/x",
        ]
    ),
)
enum_number = st.integers(min_value=-5, max_value=2**31 - 1)

listeners = st.builds(
    service_pb2.Listener,
    port=st.integers(-10, 70000),
    protocol=enum_number,
    target_port=st.integers(-10, 70000),
)
services = st.builds(
    service_pb2.Service,
    provider_account=text,
    region=text,
    display_name=text,
    load_balancer=st.one_of(
        st.builds(service_pb2.LoadBalancer),
        st.builds(
            service_pb2.LoadBalancer,
            managed=st.builds(
                service_pb2.ManagedLoadBalancer,
                subnet_ids=st.lists(text, max_size=3),
                listeners=st.lists(listeners, max_size=3),
                targets=st.lists(st.builds(service_pb2.Target, id=text), max_size=2),
            ),
        ),
        st.builds(
            service_pb2.LoadBalancer,
            adopted=st.builds(
                service_pb2.AdoptedLoadBalancers,
                network_load_balancer_arns=st.lists(text, max_size=2),
            ),
        ),
    ),
    acceptance_policy=st.builds(
        service_pb2.AcceptancePolicy,
        mode=enum_number,
        accept_rules=st.lists(
            st.builds(service_pb2.AcceptRule, principal=text, connection_limit=st.integers(-3, 3)),
            max_size=2,
        ),
        reject_principals=st.lists(text, max_size=2),
    ),
    allowed_principals=st.lists(text, max_size=3),
    private_dns_name=text,
    supported_ip_address_types=st.lists(enum_number, max_size=2),
    supported_regions=st.lists(text, max_size=2),
    labels=st.dictionaries(text, text, max_size=2),
)
connections = st.builds(
    connection_pb2.Connection,
    service=text,
    consumer_account=text,
    region=text,
    vpc_id=text,
    subnet_ids=st.lists(text, max_size=3),
    security_group_ids=st.lists(text, max_size=2),
    ip_address_type=enum_number,
    policy_document=text,
    request_message=text,
    labels=st.dictionaries(text, text, max_size=2),
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check(error: grpc.aio.AioRpcError | None) -> None:
    if error is None:
        return
    assert error.code() in DELIBERATE, (error.code(), error.details())
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        assert details(error)["fields"], error.details()


async def call(coroutine) -> grpc.aio.AioRpcError | None:
    try:
        await coroutine
    except grpc.aio.AioRpcError as error:
        return error
    return None


@FUZZ
@given(parent=text, service_id=text, service=services, request_id=text, validate_only=st.booleans())
async def test_publish_service_never_fails_internally(
    provider, parent, service_id, service, request_id, validate_only
):
    check(
        await call(
            provider.PublishService(
                provider_service_pb2.PublishServiceRequest(
                    parent=parent,
                    service_id=service_id,
                    service=service,
                    request_id=request_id,
                    validate_only=validate_only,
                )
            )
        )
    )


@FUZZ
@given(parent=text, connection=connections, page_size=st.integers(-5, 5000), filter_=text)
async def test_connections_never_fail_internally(consumer, parent, connection, page_size, filter_):
    check(
        await call(
            consumer.CreateConnection(
                consumer_service_pb2.CreateConnectionRequest(
                    parent=parent, connection=connection, validate_only=True
                )
            )
        )
    )
    check(
        await call(
            consumer.ListConnections(
                consumer_service_pb2.ListConnectionsRequest(
                    parent=parent, page_size=page_size, filter=filter_, page_token=filter_
                )
            )
        )
    )
