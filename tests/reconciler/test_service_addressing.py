"""Service addressing end to end, through the gRPC API against the simulator: IPv6 (a
dual-stack NLB, no Modify loop), an IPv4-only adopted NLB, supported Regions, and a change AWS
accepts but ignores (stalled, not looped)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from linkplane.v1 import (
    provider_service_pb2,
    service_pb2,
)
from tests.reconciler.conftest import (
    PROVIDER,
    REGION,
    eventually,
    managed_service,
    publish,
    wait_done,
)
from tests.reconciler.test_service_features import (
    IPV4,
    IPV6,
    calls,
    described,
    get,
    settle_for,
    update,
)
from tests.support import simulator

pytestmark = pytest.mark.heavy(seconds=45)


async def test_adding_ipv6_makes_the_nlb_dual_stack_and_converges_without_a_loop(
    api, networks, project, sim
):
    await api.register(project, PROVIDER)
    service = await publish(api, project, "dual", managed_service(project, networks))
    assert list(service.supported_ip_address_types) == []
    started = time.time()

    updated = await update(
        api,
        service_pb2.Service(name=service.name, supported_ip_address_types=[IPV4, IPV6]),
        "supported_ip_address_types",
    )
    done = await wait_done(api, updated.name, timeout=60)
    assert not done.HasField("error"), done.error
    active = await get(api, service.name)
    assert active.state == service_pb2.Service.STATE_ACTIVE
    assert active.observed_generation == active.generation

    config = await described(sim, active.service_id)
    assert sorted(config["SupportedIpAddressTypes"]) == ["ipv4", "ipv6"]
    async with simulator.acting_as(sim.endpoint_url, PROVIDER, "elbv2") as elbv2:
        lbs = await elbv2.describe_load_balancers(
            LoadBalancerArns=list(active.network_load_balancer_arns)
        )
    assert lbs["LoadBalancers"][0]["IpAddressType"] == "dualstack"

    # Several resyncs later nothing was re-issued (the bug: ~2.6 Modify calls a second).
    await settle_for(sim, 5 * 2.0)
    modifies = calls(sim, "ModifyVpcEndpointServiceConfiguration", started)
    assert len(modifies) == 1, modifies
    assert len(calls(sim, "SetIpAddressType", started)) == 1
    current = await get(api, service.name)
    assert current.state == service_pb2.Service.STATE_ACTIVE
    assert "Stalled" not in {c.type for c in current.conditions if c.status == c.STATUS_TRUE}

    # And back: IPv6 leaves the service first, then the NLB returns to IPv4.
    removed = await update(
        api,
        service_pb2.Service(name=service.name, supported_ip_address_types=[IPV4]),
        "supported_ip_address_types",
    )
    done = await wait_done(api, removed.name, timeout=60)
    assert not done.HasField("error"), done.error
    assert (await described(sim, active.service_id))["SupportedIpAddressTypes"] == ["ipv4"]
    async with simulator.acting_as(sim.endpoint_url, PROVIDER, "elbv2") as elbv2:
        lbs = await eventually(
            lambda: elbv2.describe_load_balancers(
                LoadBalancerArns=list(active.network_load_balancer_arns)
            ),
            lambda r: r["LoadBalancers"][0]["IpAddressType"] == "ipv4",
        )


async def test_a_dual_stack_service_can_be_published_at_once(api, networks, project, sim):
    await api.register(project, PROVIDER)
    spec = managed_service(project, networks)
    spec.supported_ip_address_types[:] = [IPV4, IPV6]
    started = time.time()
    service = await publish(api, project, "dual-new", spec)
    assert service.state == service_pb2.Service.STATE_ACTIVE
    config = await described(sim, service.service_id)
    assert sorted(config["SupportedIpAddressTypes"]) == ["ipv4", "ipv6"]
    # Created dual-stack: no Modify and no SetIpAddressType were needed.
    assert calls(sim, "ModifyVpcEndpointServiceConfiguration", started) == []
    assert calls(sim, "SetIpAddressType", started) == []


async def test_ipv6_on_an_ipv4_only_adopted_nlb_fails_clearly(api, networks, project, sim):
    await api.register(project, PROVIDER)
    async with simulator.acting_as(sim.endpoint_url, PROVIDER, "elbv2") as elbv2:
        created = await elbv2.create_load_balancer(
            Name=f"ipv4only-{uuid.uuid4().hex[:8]}",
            Type="network",
            Scheme="internal",
            Subnets=networks[PROVIDER]["subnet_ids"],
        )
    arn = created["LoadBalancers"][0]["LoadBalancerArn"]
    spec = managed_service(project, networks)
    spec.load_balancer.CopyFrom(
        service_pb2.LoadBalancer(
            adopted=service_pb2.AdoptedLoadBalancers(network_load_balancer_arns=[arn])
        )
    )
    spec.supported_ip_address_types[:] = [IPV4, IPV6]
    started = time.time()
    published = await api.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="adopted-v4", service=spec
        )
    )
    done = await wait_done(api, published.name)
    assert done.HasField("error")
    assert "LoadBalancerNotDualStack" in done.error.message
    assert arn in done.error.message
    failed = await get(api, f"projects/{project}/services/adopted-v4")
    assert failed.state == service_pb2.Service.STATE_FAILED
    assert failed.last_aws_error.code == "LoadBalancerNotDualStack"
    # Nothing was asked of AWS that it would refuse: no endpoint service, no Modify.
    assert calls(sim, "CreateVpcEndpointServiceConfiguration", started) == []
    assert calls(sim, "ModifyVpcEndpointServiceConfiguration", started) == []


async def test_supported_regions_converge(api, networks, project, sim):
    await api.register(project, PROVIDER)
    spec = managed_service(project, networks)
    spec.supported_regions[:] = ["us-west-2"]
    service = await publish(api, project, "regions", spec)

    def remote(config: dict[str, Any]) -> list[str]:
        return sorted(
            r["Region"]
            for r in config.get("SupportedRegions", [])
            if r["Region"] != REGION and r.get("ServiceState", "").lower() not in {"closed"}
        )

    assert remote(await described(sim, service.service_id)) == ["us-west-2"]
    started = time.time()
    changed = await update(
        api,
        service_pb2.Service(name=service.name, supported_regions=["eu-west-1", "us-west-2"]),
        "supported_regions",
    )
    done = await wait_done(api, changed.name, timeout=60)
    assert not done.HasField("error"), done.error
    assert remote(await described(sim, service.service_id)) == ["eu-west-1", "us-west-2"]

    dropped = await update(
        api, service_pb2.Service(name=service.name, supported_regions=[]), "supported_regions"
    )
    done = await wait_done(api, dropped.name, timeout=60)
    assert not done.HasField("error"), done.error
    assert remote(await described(sim, service.service_id)) == []
    await settle_for(sim, 3 * 2.0)
    assert len(calls(sim, "ModifyVpcEndpointServiceConfiguration", started)) == 2


def _accept_and_ignore(self: Any) -> Any:
    """ModifyVpcEndpointServiceConfiguration as a misbehaving AWS: 200 OK, nothing changes."""
    from moto.core.responses import ActionResult

    return ActionResult({"ReturnValue": True})


async def test_a_change_aws_ignores_stalls_instead_of_looping(
    api, networks, project, sim, monkeypatch
):
    from moto.ec2.responses import EC2Response

    await api.register(project, PROVIDER)
    service = await publish(api, project, "ignored", managed_service(project, networks))
    monkeypatch.setattr(
        EC2Response, "modify_vpc_endpoint_service_configuration", _accept_and_ignore
    )
    started = time.time()
    updated = await update(
        api,
        service_pb2.Service(name=service.name, supported_regions=["us-west-2"]),
        "supported_regions",
    )
    done = await wait_done(api, updated.name, timeout=60)
    assert done.HasField("error"), "the caller learns that AWS does not take the change"
    assert "configuration.supported_regions" in done.error.message
    assert "us-west-2" in done.error.message
    stalled = await get(api, service.name)
    condition = {c.type: c for c in stalled.conditions}["Stalled"]
    assert condition.status == condition.STATUS_TRUE
    assert "us-west-2" in condition.message
    assert stalled.state == service_pb2.Service.STATE_UPDATING

    # Dozens of passes later (transitional 0.2 s) AWS was asked three times, not hundreds.
    await settle_for(sim, 10.0)
    assert len(calls(sim, "ModifyVpcEndpointServiceConfiguration", started)) == 3

    monkeypatch.undo()
    deleted = await api.provider.DeleteService(
        provider_service_pb2.DeleteServiceRequest(name=service.name, force=True)
    )
    done = await wait_done(api, deleted.name, timeout=60)
    assert not done.HasField("error"), done.error
