"""What a Connection's spec asks of its endpoint: the create, and the changes by diff.

`create_endpoint` turns the spec into CreateVpcEndpoint's parameters. Once the endpoint is
available, `converge` compares each field with what AWS reports (a `Plan` of `Change`s), passes
every change through the mutation guard (`stalls`) and sends the rest in one ModifyVpcEndpoint:
a change AWS accepts but does not reflect is retried a few times, then reported as `Stalled` and
retried with backoff, never in a loop. `network_interfaces` reads the endpoint's ENIs for the
status.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable
from typing import Any

import structlog

from linkplane.server.aws import calls
from linkplane.server.aws import endpoints as aws_endpoints
from linkplane.server.aws import errors as aws_errors
from linkplane.server.domain import specs
from linkplane.server.reconciler import progress, stalls
from linkplane.server.reconciler.connection_model import NetworkInterface, ServiceDetail, Target
from linkplane.server.reconciler.connection_preflight import Preflight, check_ip_type
from linkplane.server.reconciler.stalls import Change

log = structlog.get_logger("linkplane.reconciler.connections")
MODIFY = "ModifyVpcEndpoint"
# The policy AWS gives an endpoint created without one, and restores on ResetPolicy.
DEFAULT_ENDPOINT_POLICY: dict[str, Any] = {
    "Version": "2008-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}],
}
# The DNS records that go with each endpoint IP address type.
DNS_RECORD_IP_TYPE = {"ipv4": "ipv4", "dualstack": "dualstack", "ipv6": "ipv6"}


@dataclasses.dataclass
class Plan:
    """What one pass wants to change on an available endpoint."""

    changes: list[Change] = dataclasses.field(default_factory=list)
    settled: list[str] = dataclasses.field(default_factory=list)
    """Fields that AWS shows as wanted (their stall bookkeeping is cleared)."""

    def compare(self, field: str, wanted: object, observed: object, params: dict[str, Any]) -> None:
        if wanted == observed:
            self.settled.append(field)
        else:
            self.changes.append(Change(field, wanted, observed, params))

    def compare_ids(self, field: str, wanted: Iterable[str], observed: Iterable[str]) -> None:
        """A set of ids, changed by ``Add<field>`` and ``Remove<field>`` (each only if needed)."""
        want, have = set(wanted), set(observed)
        params = {f"Add{field}": sorted(want - have), f"Remove{field}": sorted(have - want)}
        self.compare(field, sorted(want), sorted(have), {k: v for k, v in params.items() if v})


@dataclasses.dataclass(frozen=True)
class Applied:
    """What applying a plan did: how many fields went to AWS, which are stalled."""

    sent: int
    stalled: list[stalls.Stalled]


async def create_endpoint(
    ctx: calls.Context,
    spec: specs.ConnectionSpec,
    target: Target,
    detail: ServiceDetail,
    uid: str,
    name: str,
    generation: int,
) -> aws_endpoints.Endpoint:
    extra: dict[str, Any] = {}
    if spec.policy_document:
        extra["PolicyDocument"] = spec.policy_document
    if spec.gateway:
        created = await aws_endpoints.create_gateway_endpoint(
            ctx,
            uid=uid,
            generation=generation,
            name=name,
            vpc_id=spec.vpc_id,
            service_name=target.service_name,
            route_table_ids=spec.route_table_ids,
            labels=spec.labels,
            **extra,
        )
        return aws_endpoints.Endpoint.parse(created)
    if spec.ip_address_type:
        extra["IpAddressType"] = spec.ip_address_type
        extra["DnsOptions"] = {"DnsRecordIpType": DNS_RECORD_IP_TYPE[spec.ip_address_type]}
    if target.cross_region:
        extra["ServiceRegion"] = target.region
    created = await aws_endpoints.create_endpoint(
        ctx,
        uid=uid,
        generation=generation,
        name=name,
        vpc_id=spec.vpc_id,
        service_name=target.service_name,
        subnet_ids=spec.subnet_ids,
        security_group_ids=spec.security_group_ids,
        labels=spec.labels,
        # AWS services need no acceptance: their private DNS can be on from the start.
        # Endpoint services get it once accepted (and verified), by ModifyVpcEndpoint.
        private_dns_enabled=bool(
            spec.private_dns_enabled and target.aws_service and detail.private_dns_name
        ),
        **extra,
    )
    return aws_endpoints.Endpoint.parse(created)


async def converge(
    ctx: calls.Context,
    preflight: Preflight,
    spec: specs.ConnectionSpec,
    status: dict[str, Any],
    endpoint: aws_endpoints.Endpoint,
    target: Target,
    attempts: int,
    generation: int,
) -> Applied:
    """Plan the differences, pass each through the mutation guard, send one Modify."""
    plan = await _plan(ctx, preflight, spec, status, endpoint, target, attempts, generation)
    guard = stalls.MutationGuard.load(status)
    for field in plan.settled:
        guard.clear(field)
    params: dict[str, Any] = {}
    stalled: list[stalls.Stalled] = []
    now = time.time()
    for change in plan.changes:
        admitted = guard.admit(
            MODIFY,
            change,
            now=now,
            stalled=stalled,
            log=log,
            event="connection.stalled",
            endpoint=endpoint.endpoint_id,
        )
        if admitted:
            params.update(change.params)
    stalls.set_stalled_condition(status, stalled, generation)
    guard.save(status)
    if params:
        await ctx.call("ec2", MODIFY, VpcEndpointId=endpoint.endpoint_id, **params)
    return Applied(sent=len(plan.changes) - len(stalled), stalled=stalled)


async def _plan(
    ctx: calls.Context,
    preflight: Preflight,
    spec: specs.ConnectionSpec,
    status: dict[str, Any],
    endpoint: aws_endpoints.Endpoint,
    target: Target,
    attempts: int,
    generation: int,
) -> Plan:
    plan = Plan()
    if spec.policy_document:
        plan.compare(
            "PolicyDocument",
            _canonical_policy(spec.policy_document),
            _canonical_policy(endpoint.policy_document),
            {"PolicyDocument": spec.policy_document},
        )
    else:
        # No policy wanted means AWS's default (full access), not whatever policy was set
        # last: an emptied policy_document is ResetPolicy.
        observed = _canonical_policy(endpoint.policy_document or "")
        plan.compare(
            "PolicyDocument",
            DEFAULT_ENDPOINT_POLICY,
            DEFAULT_ENDPOINT_POLICY if _is_default_policy(observed) else observed,
            {"ResetPolicy": True},
        )
    if spec.gateway:
        plan.compare_ids("RouteTableIds", spec.route_table_ids, endpoint.route_table_ids)
        return plan
    plan.compare_ids("SubnetIds", spec.subnet_ids, endpoint.subnet_ids)
    if spec.security_group_ids:
        plan.compare_ids("SecurityGroupIds", spec.security_group_ids, endpoint.security_group_ids)
    if spec.ip_address_type:
        wanted_ip = (spec.ip_address_type, DNS_RECORD_IP_TYPE[spec.ip_address_type])
        # AWS reports DnsOptions for every interface endpoint; a backend that leaves it
        # out has nothing to compare, so only the address type counts there.
        observed_ip = (
            endpoint.ip_address_type,
            endpoint.dns_record_ip_type or wanted_ip[1],
        )
        if wanted_ip != observed_ip:
            # Check before asking AWS, for the same clear error as at creation.
            detail = await preflight.service_detail(ctx, target, attempts)
            check_ip_type(spec, target, detail, await preflight.subnets(ctx, spec))
        plan.compare(
            "IpAddressType",
            list(wanted_ip),
            list(observed_ip),
            {"IpAddressType": wanted_ip[0], "DnsOptions": {"DnsRecordIpType": wanted_ip[1]}},
        )
    wanted_dns = await _private_dns_wanted(
        ctx, preflight, spec, status, target, attempts, generation
    )
    plan.compare(
        "PrivateDnsEnabled",
        wanted_dns,
        endpoint.private_dns_enabled,
        {"PrivateDnsEnabled": wanted_dns},
    )
    return plan


async def _private_dns_wanted(
    ctx: calls.Context,
    preflight: Preflight,
    spec: specs.ConnectionSpec,
    status: dict[str, Any],
    target: Target,
    attempts: int,
    generation: int,
) -> bool:
    """Whether private DNS should be on now: wanted, and usable.

    AWS reports ``PrivateDnsEnabled`` as the setting itself, so asking for it where it
    cannot take effect (a service without a private DNS name, or one not verified yet)
    either fails or is never reflected. It is usable for an AWS service that has a
    private name (SQS's ``sqs.<region>.amazonaws.com``) and for an endpoint service whose
    name the provider verified; otherwise the ``PrivateDns`` condition says what it waits for.
    """
    if not spec.private_dns_enabled:
        if any(c.get("type") == "PrivateDns" for c in status.get("conditions", [])):
            progress.set_condition(
                status, "PrivateDns", False, "NotRequested", "private DNS is off", generation
            )
        return False
    usable, reason, why = True, "Enabled", "the service's private DNS name resolves in the VPC"
    linkplane = target.linkplane
    if linkplane is not None:
        if not linkplane.spec.private_dns_name:
            usable, reason = False, "NoPrivateDnsName"
            why = f"{linkplane.name} has no private DNS name"
        elif not linkplane.private_dns_verified:
            usable, reason = False, "AwaitingVerification"
            why = f"{linkplane.spec.private_dns_name} is not verified by the provider yet"
    else:
        detail = await preflight.service_detail(ctx, target, attempts)
        if not detail.private_dns_name:
            usable, reason = False, "NoPrivateDnsName"
            why = f"{target.service_name} has no private DNS name"
        elif not target.aws_service and not detail.private_dns_verified:
            usable, reason = False, "AwaitingVerification"
            why = f"{detail.private_dns_name} is not verified by the provider yet"
    progress.set_condition(status, "PrivateDns", usable, reason, why, generation)
    return usable


async def network_interfaces(
    ctx: calls.Context, endpoint: aws_endpoints.Endpoint, status: dict[str, Any]
) -> list[NetworkInterface]:
    ids = list(endpoint.network_interface_ids)
    if not ids:
        return []
    known = [
        NetworkInterface(
            network_interface_id=str(n.get("network_interface_id", "")),
            subnet_id=str(n.get("subnet_id", "")),
            availability_zone=str(n.get("availability_zone", "")),
            private_ip_address=str(n.get("private_ip_address", "")),
            ipv6_addresses=[str(a) for a in n.get("ipv6_addresses") or []],
        )
        for n in status.get("network_interfaces") or []
    ]
    # An ENI keeps its subnet and primary IP for life, but gains IPv6 addresses when the
    # endpoint's IP address type changes: ask again when the ENIs or the type changed.
    ip_type = f"{endpoint.ip_address_type}/{endpoint.dns_record_ip_type}"
    if (
        sorted(ids) == sorted(n.network_interface_id for n in known)
        and status.get("interfaces_ip_type") == ip_type
    ):
        return known
    try:
        found = (await ctx.call("ec2", "DescribeNetworkInterfaces", NetworkInterfaceIds=ids)).get(
            "NetworkInterfaces", []
        )
    except aws_errors.AwsError as error:
        if aws_errors.is_not_found(error):
            return []
        raise
    status["interfaces_ip_type"] = ip_type
    return [
        NetworkInterface(
            network_interface_id=str(n.get("NetworkInterfaceId", "")),
            subnet_id=str(n.get("SubnetId", "")),
            availability_zone=str(n.get("AvailabilityZone", "")),
            private_ip_address=str(n.get("PrivateIpAddress", "")),
            ipv6_addresses=[str(a.get("Ipv6Address", "")) for a in n.get("Ipv6Addresses", [])],
        )
        for n in sorted(found, key=lambda n: str(n.get("SubnetId", "")))
    ]


def _is_default_policy(policy: object) -> bool:
    """Whether an endpoint's policy is AWS's default (or absent: services without policies)."""
    if policy in ("", None):
        return True
    if not isinstance(policy, dict):
        return False
    # The Version AWS writes into its default has varied; the grant is what matters.
    return bool(policy.get("Statement") == DEFAULT_ENDPOINT_POLICY["Statement"])


def _canonical_policy(document: str) -> object:
    """A policy as data, so AWS's re-formatting of the JSON is not a difference."""
    try:
        parsed: object = json.loads(document)
    except ValueError:
        return document
    return parsed
