"""ProviderService input handling without AWS: adopted NLBs of the wrong account, validate_only
updates answering the would-be resource, VerifyServicePrivateDns preconditions."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from linkplane.v1 import (
    common_pb2,
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.api.conftest import (
    PROVIDER_ID,
    connection_to,
    details,
    managed_service,
    register_accounts,
)

NLB = "arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/net/web/0123456789abcdef"


def adopted(project: str, *arns: str) -> service_pb2.Service:
    service = managed_service(project)
    service.load_balancer.CopyFrom(
        service_pb2.LoadBalancer(
            adopted=service_pb2.AdoptedLoadBalancers(network_load_balancer_arns=list(arns))
        )
    )
    return service


async def publish(provider, project, service_id, service, validate_only=False):
    return await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}",
            service_id=service_id,
            service=service,
            request_id=str(uuid.uuid4()),
            validate_only=validate_only,
        )
    )


async def test_an_nlb_of_another_account_is_invalid_and_named(accounts, provider, project):
    await register_accounts(accounts, project)
    own = NLB.format(region="us-east-1", account=PROVIDER_ID)
    foreign = NLB.format(region="us-east-1", account="999999999999")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await publish(provider, project, "foreign", adopted(project, own, foreign))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == [
        "service.load_balancer.adopted.network_load_balancer_arns[1]"
    ]
    assert "999999999999" in caught.value.details()

    # An NLB in another Region cannot back the service either.
    elsewhere = NLB.format(region="eu-west-1", account=PROVIDER_ID)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await publish(provider, project, "elsewhere", adopted(project, elsewhere))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == [
        "service.load_balancer.adopted.network_load_balancer_arns[0]"
    ]

    # The provider's own NLB passes; and an update to a foreign one is refused the same way.
    await publish(provider, project, "own", adopted(project, own))
    name = f"projects/{project}/services/own"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.UpdateService(
            provider_service_pb2.UpdateServiceRequest(
                service=service_pb2.Service(
                    name=name, load_balancer=adopted(project, foreign).load_balancer
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["load_balancer"]),
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)["fields"] == [
        "service.load_balancer.adopted.network_load_balancer_arns[0]"
    ]


async def test_validate_only_update_answers_the_would_be_service(accounts, provider, project):
    await register_accounts(accounts, project)
    await publish(provider, project, "preview", managed_service(project))
    name = f"projects/{project}/services/preview"
    before = await provider.GetService(provider_service_pb2.GetServiceRequest(name=name))

    answer = await provider.UpdateService(
        provider_service_pb2.UpdateServiceRequest(
            service=service_pb2.Service(
                name=name,
                supported_ip_address_types=[
                    common_pb2.IP_ADDRESS_TYPE_IPV4,
                    common_pb2.IP_ADDRESS_TYPE_IPV6,
                ],
                supported_regions=["us-west-2"],
            ),
            update_mask=field_mask_pb2.FieldMask(
                paths=["supported_ip_address_types", "supported_regions"]
            ),
            validate_only=True,
        )
    )
    assert answer.done and not answer.name
    would_be = service_pb2.Service()
    answer.response.Unpack(would_be)
    assert list(would_be.supported_ip_address_types) == [
        common_pb2.IP_ADDRESS_TYPE_IPV4,
        common_pb2.IP_ADDRESS_TYPE_IPV6,
    ]
    assert list(would_be.supported_regions) == ["us-west-2"]
    assert would_be.generation == before.generation + 1
    assert would_be.reconciling

    after = await provider.GetService(provider_service_pb2.GetServiceRequest(name=name))
    assert after == before, "validate_only wrote nothing"


async def test_validate_only_connection_update_answers_the_would_be_connection(
    accounts, provider, consumer, project
):
    await register_accounts(accounts, project)
    await publish(provider, project, "target", managed_service(project))
    created = await consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}",
            connection_id="conn",
            connection=connection_to(project, f"projects/{project}/services/target"),
            request_id=str(uuid.uuid4()),
        )
    )
    assert created.name
    name = f"projects/{project}/connections/conn"
    answer = await consumer.UpdateConnection(
        consumer_service_pb2.UpdateConnectionRequest(
            connection=connection_pb2.Connection(name=name, labels={"team": "search"}),
            update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
            validate_only=True,
        )
    )
    would_be = connection_pb2.Connection()
    answer.response.Unpack(would_be)
    assert dict(would_be.labels) == {"team": "search"}
    current = await consumer.GetConnection(consumer_service_pb2.GetConnectionRequest(name=name))
    assert dict(current.labels) == {"team": "checkout"}


async def test_verify_private_dns_needs_a_private_dns_name(accounts, provider, project):
    await register_accounts(accounts, project)
    await publish(provider, project, "nodns", managed_service(project))
    name = f"projects/{project}/services/nodns"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.VerifyServicePrivateDns(
            provider_service_pb2.VerifyServicePrivateDnsRequest(name=name)
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(caught.value)["reason"] == "NO_PRIVATE_DNS_NAME"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.VerifyServicePrivateDns(
            provider_service_pb2.VerifyServicePrivateDnsRequest(
                name=f"projects/{project}/services/missing"
            )
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    dns = managed_service(project, private_dns_name=f"api.{project}.example.com")
    await publish(provider, project, "dns", dns)
    dns_name = f"projects/{project}/services/dns"
    current = await provider.GetService(provider_service_pb2.GetServiceRequest(name=dns_name))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await provider.VerifyServicePrivateDns(
            provider_service_pb2.VerifyServicePrivateDnsRequest(name=dns_name, etag="W/stale")
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED
    preview = await provider.VerifyServicePrivateDns(
        provider_service_pb2.VerifyServicePrivateDnsRequest(
            name=dns_name, etag=current.etag, validate_only=True
        )
    )
    assert preview.done and not preview.name
    request_id = str(uuid.uuid4())
    first = await provider.VerifyServicePrivateDns(
        provider_service_pb2.VerifyServicePrivateDnsRequest(name=dns_name, request_id=request_id)
    )
    again = await provider.VerifyServicePrivateDns(
        provider_service_pb2.VerifyServicePrivateDnsRequest(name=dns_name, request_id=request_id)
    )
    assert first.name and first.name == again.name and not first.done
