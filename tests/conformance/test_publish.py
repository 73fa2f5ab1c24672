"""Providers publish: behind a managed NLB or an adopted one; principals and acceptance."""

from __future__ import annotations

from linkplane.v1 import common_pb2, service_pb2
from tests.conformance.harness import REGION, TRUE, Svc, Tenant, condition, eventually

IPV4, IPV6 = common_pb2.IP_ADDRESS_TYPE_IPV4, common_pb2.IP_ADDRESS_TYPE_IPV6


async def test_publish_behind_a_managed_nlb(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider, consumer = await tenant.account("10.10.0.0/16"), await tenant.account()
    service = await api.publish(
        "orders", tenant.managed_service(provider, allowed=[consumer.account_id])
    )

    assert service.state == Svc.STATE_ACTIVE and not service.reconciling
    assert condition(service, "Ready").status == TRUE
    assert service.service_id.startswith("vpce-svc-")
    assert service.service_name == f"com.amazonaws.vpce.{REGION}.{service.service_id}"
    [nlb_arn] = service.network_load_balancer_arns
    assert sorted(service.availability_zones) == sorted(provider.network.availability_zones)

    inventory = await sim.objects(provider.account_id)
    [nlb] = [lb for lb in inventory["load_balancers"] if lb["arn"] == nlb_arn]
    assert nlb["type"] == "network" and nlb["state"] == "active"
    assert nlb["tags"]["linkplane:uid"] == service.uid
    [aws_service] = inventory["endpoint_services"]
    assert aws_service["id"] == service.service_id
    assert aws_service["state"] == "Available"
    assert aws_service["network_load_balancer_arns"] == [nlb_arn]
    assert aws_service["tags"]["linkplane:uid"] == service.uid
    elbv2 = await sim.client(provider.account_id, "elbv2")
    listeners = (await elbv2.describe_listeners(LoadBalancerArn=nlb_arn))["Listeners"]
    assert [listener["Port"] for listener in listeners] == [443]


async def test_publish_behind_an_adopted_nlb(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.11.0.0/16")
    # The provider's own NLB, made outside linkplane.
    elbv2 = await sim.client(provider.account_id, "elbv2")
    created = await elbv2.create_load_balancer(
        Name="team-nlb",
        Type="network",
        Scheme="internal",
        Subnets=provider.network.subnet_ids,
    )
    nlb_arn = created["LoadBalancers"][0]["LoadBalancerArn"]
    spec = Svc(
        provider_account=provider.resource,
        region=REGION,
        load_balancer=service_pb2.LoadBalancer(
            adopted=service_pb2.AdoptedLoadBalancers(network_load_balancer_arns=[nlb_arn])
        ),
    )
    service = await api.publish("adopted", spec)

    assert service.state == Svc.STATE_ACTIVE
    assert list(service.network_load_balancer_arns) == [nlb_arn]
    inventory = await sim.objects(provider.account_id)
    assert [lb["arn"] for lb in inventory["load_balancers"]] == [nlb_arn], "no NLB of its own"
    [aws_service] = inventory["endpoint_services"]
    assert aws_service["network_load_balancer_arns"] == [nlb_arn]
    assert aws_service["state"] == "Available"

    # Deleting the service never deletes an adopted NLB.
    done = await api.delete_service(service.name)
    assert not done.HasField("error"), done.error
    after = await sim.objects(provider.account_id)
    assert after["endpoint_services"] == []
    assert [lb["arn"] for lb in after["load_balancers"]] == [nlb_arn]


async def test_principals_and_acceptance_reach_aws(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.12.0.0/16")
    first, second = await tenant.account(), await tenant.account()
    service = await api.publish(
        "guarded", tenant.managed_service(provider, allowed=[first.account_id])
    )
    assert list(service.allowed_principals) == [first.account_id]
    assert await sim.allowed_principals(provider.account_id, service.service_id) == {
        f"arn:aws:iam::{first.account_id}:root"
    }
    # Manual approval by default: AWS must hold every request for a decision.
    config = await sim.service_configuration(provider.account_id, service.service_id)
    assert config["AcceptanceRequired"] is True

    # Swap the principals; linkplane applies the diff to AWS.
    done = await api.update_service(
        Svc(name=service.name, allowed_principals=[second.account_id, "*"]),
        "allowed_principals",
    )
    assert not done.HasField("error"), done.error
    updated = await api.get_service(service.name)
    assert set(updated.allowed_principals) == {second.account_id, "*"}
    assert await sim.allowed_principals(provider.account_id, service.service_id) == {
        f"arn:aws:iam::{second.account_id}:root",
        "*",
    }

    # Automatic acceptance without rules: AWS accepts on its own.
    done = await api.update_service(
        Svc(
            name=service.name,
            acceptance_policy=service_pb2.AcceptancePolicy(
                mode=service_pb2.AcceptancePolicy.MODE_AUTOMATIC
            ),
        ),
        "acceptance_policy",
    )
    assert not done.HasField("error"), done.error
    config = await eventually(
        lambda: sim.service_configuration(provider.account_id, service.service_id),
        lambda c: c["AcceptanceRequired"] is False,
    )
    assert config["ServiceState"] == "Available"


async def test_ip_types_and_supported_regions_reach_aws(tenant: Tenant) -> None:
    api, sim = tenant.api, tenant.sim
    provider = await tenant.account("10.13.0.0/16")
    spec = tenant.managed_service(provider)
    spec.supported_ip_address_types[:] = [IPV4, IPV6]
    spec.supported_regions[:] = ["us-west-2"]
    service = await api.publish("everywhere", spec)
    assert service.state == Svc.STATE_ACTIVE
    assert list(service.supported_ip_address_types) == [IPV4, IPV6]
    assert list(service.supported_regions) == ["us-west-2"]

    config = await sim.service_configuration(provider.account_id, service.service_id)
    assert sorted(config["SupportedIpAddressTypes"]) == ["ipv4", "ipv6"]
    offered = {r["Region"] for r in config["SupportedRegions"]}
    assert offered == {REGION, "us-west-2"}
    # IPv6 needs a dual-stack NLB: linkplane made its managed one so.
    elbv2 = await sim.client(provider.account_id, "elbv2")
    [nlb] = (
        await elbv2.describe_load_balancers(
            LoadBalancerArns=list(service.network_load_balancer_arns)
        )
    )["LoadBalancers"]
    assert nlb["IpAddressType"] == "dualstack"

    # Back to IPv4 only and no other Region.
    done = await api.update_service(
        Svc(name=service.name, supported_ip_address_types=[IPV4], supported_regions=[]),
        "supported_ip_address_types",
        "supported_regions",
    )
    assert not done.HasField("error"), done.error
    config = await sim.service_configuration(provider.account_id, service.service_id)
    assert config["SupportedIpAddressTypes"] == ["ipv4"]
    assert {
        r["Region"]
        for r in config["SupportedRegions"]
        if str(r.get("ServiceState", "")).lower() != "closed"
    } == {REGION}
    current = await api.get_service(service.name)
    assert current.state == Svc.STATE_ACTIVE and list(current.supported_regions) == []
