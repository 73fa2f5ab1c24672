"""Consumer-side steps: interface VPC endpoints (``vpce-…``) in the consumer's account.

Thin, idempotent helpers over ``calls`` for the reconciler's endpoint work: create with the
parameters AWS's defaults get wrong, find by ownership tag (adoption after a crash), delete in
batches. Endpoint states are read into their canonical names (`domain/states.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from linkplane.server.aws import calls, errors, tags
from linkplane.server.domain import states


@dataclasses.dataclass(frozen=True)
class DnsEntry:
    """One DNS name AWS created for an interface endpoint."""

    dns_name: str
    hosted_zone_id: str


@dataclasses.dataclass(frozen=True)
class LastError:
    """Why AWS failed an endpoint (``LastError`` of a Failed endpoint)."""

    code: str
    message: str


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A VPC endpoint as DescribeVpcEndpoints/CreateVpcEndpoint report it, typed.

    ``raw`` keeps AWS's answer for the few callers that need its shape (tags).
    """

    endpoint_id: str
    endpoint_type: str
    """``Interface`` or ``Gateway`` (``GatewayLoadBalancer`` is never created by linkplane)."""
    state: str
    """Canonical: ``PENDING_ACCEPTANCE``, ``AVAILABLE``, … (domain/states.py); FAILED if unknown."""
    service_name: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    route_table_ids: tuple[str, ...]
    private_dns_enabled: bool
    ip_address_type: str
    """``ipv4``, ``dualstack`` or ``ipv6``; empty when AWS does not say (gateway endpoints)."""
    dns_record_ip_type: str
    """``DnsOptions.DnsRecordIpType``: which records the endpoint's DNS names have."""
    policy_document: str
    dns_entries: tuple[DnsEntry, ...]
    network_interface_ids: tuple[str, ...]
    last_error: LastError | None
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Endpoint:
        error = data.get("LastError") or {}
        return cls(
            endpoint_id=str(data["VpcEndpointId"]),
            endpoint_type=str(data.get("VpcEndpointType") or "Interface"),
            state=states.normalise_endpoint_state(data.get("State")),
            service_name=str(data.get("ServiceName", "")),
            subnet_ids=tuple(data.get("SubnetIds") or ()),
            security_group_ids=tuple(
                str(g.get("GroupId", "")) for g in data.get("Groups") or () if g.get("GroupId")
            ),
            route_table_ids=tuple(data.get("RouteTableIds") or ()),
            private_dns_enabled=data.get("PrivateDnsEnabled") is True,
            ip_address_type=str(data.get("IpAddressType") or ""),
            dns_record_ip_type=str((data.get("DnsOptions") or {}).get("DnsRecordIpType") or ""),
            policy_document=str(data.get("PolicyDocument") or ""),
            dns_entries=tuple(
                DnsEntry(str(d.get("DnsName", "")), str(d.get("HostedZoneId", "")))
                for d in data.get("DnsEntries") or ()
            ),
            network_interface_ids=tuple(data.get("NetworkInterfaceIds") or ()),
            last_error=(
                LastError(str(error.get("Code", "")), str(error.get("Message", "")))
                if error
                else None
            ),
            raw=data,
        )


async def create_gateway_endpoint(
    ctx: calls.Context,
    *,
    uid: str,
    generation: int,
    name: str,
    vpc_id: str,
    service_name: str,
    route_table_ids: Sequence[str],
    labels: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """CreateVpcEndpoint for a *gateway* endpoint (S3, DynamoDB); returns the ``VpcEndpoint``.

    Gateway endpoints have route tables instead of subnets, no ENIs, security groups, private
    DNS or acceptance. The type is sent explicitly (it is AWS's default, but relying on a
    default for the kind of object created is how interface endpoints go wrong). ClientToken
    and ownership tag as for :func:`create_endpoint`; ``extra`` passes PolicyDocument.
    """
    params: dict[str, Any] = {
        "VpcEndpointType": "Gateway",
        "VpcId": vpc_id,
        "ServiceName": service_name,
        "RouteTableIds": list(route_table_ids),
        "ClientToken": tags.deterministic_client_token(uid, generation, "endpoint"),
        "TagSpecifications": tags.linkplane_tags(uid, "endpoint", name, labels),
    }
    params = calls.merge_params(params, extra)
    response = await ctx.call("ec2", "CreateVpcEndpoint", **params)
    endpoint: dict[str, Any] = response["VpcEndpoint"]
    return endpoint


async def create_endpoint(
    ctx: calls.Context,
    *,
    uid: str,
    generation: int,
    name: str,
    vpc_id: str,
    service_name: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    private_dns_enabled: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """CreateVpcEndpoint for an *interface* endpoint; returns the ``VpcEndpoint``.

    Respects: the API's default type is Gateway, so ``VpcEndpointType="Interface"`` is always
    sent; a deterministic ClientToken makes a repeated create return the original endpoint;
    TagSpecifications put the ``linkplane:uid`` tag on at creation so that
    :func:`find_endpoint_by_uid` can adopt it when the token is no longer honoured. ``extra``
    passes further CreateVpcEndpoint parameters (ServiceRegion, IpAddressType, DnsOptions,
    SubnetConfigurations, PolicyDocument) through unchanged.
    """
    params: dict[str, Any] = {
        "VpcEndpointType": "Interface",
        "VpcId": vpc_id,
        "ServiceName": service_name,
        "SubnetIds": list(subnet_ids),
        "ClientToken": tags.deterministic_client_token(uid, generation, "endpoint"),
        "TagSpecifications": tags.linkplane_tags(uid, "endpoint", name, labels),
    }
    if security_group_ids:
        params["SecurityGroupIds"] = list(security_group_ids)
    if private_dns_enabled is not None:
        params["PrivateDnsEnabled"] = private_dns_enabled
    params = calls.merge_params(params, extra)
    response = await ctx.call("ec2", "CreateVpcEndpoint", **params)
    endpoint: dict[str, Any] = response["VpcEndpoint"]
    return endpoint


async def find_endpoints_by_uid(ctx: calls.Context, uid: str) -> list[dict[str, Any]]:
    """Every endpoint tagged ``linkplane:uid=<uid>``, all pages, oldest first.

    More than one means an earlier create was repeated without its token being honoured: the
    reconciler keeps one (see :func:`find_endpoint_by_uid`) and deletes the rest.
    """
    found = await ctx.collect(
        "ec2", "DescribeVpcEndpoints", "VpcEndpoints", Filters=tags.uid_filter(uid)
    )
    # The tag is checked again here so a backend that ignores Filters cannot hand back
    # somebody else's endpoint for adoption.
    owned = [e for e in found if tags.tag_value(e, tags.UID_KEY) == uid]
    return sorted(owned, key=lambda e: (str(e.get("CreationTimestamp", "")), e["VpcEndpointId"]))


async def find_endpoint_by_uid(ctx: calls.Context, uid: str) -> dict[str, Any] | None:
    """The endpoint to adopt for a resource: the oldest one tagged with its uid, not being
    deleted; None when there is none (then, and only then, create).

    Respects DescribeVpcEndpoints' ``tag:`` filter and pagination. A Describe right after a
    create can miss the new endpoint (eventual consistency): callers that just created one
    should keep the id from the create response rather than search.
    """
    for endpoint in await find_endpoints_by_uid(ctx, uid):
        if (
            states.normalise_endpoint_state(endpoint.get("State"))
            not in states.GONE_ENDPOINT_STATES
        ):
            return endpoint
    return None


async def describe_endpoint(
    ctx: calls.Context, endpoint_id: str, *, recently_created: bool = False
) -> dict[str, Any] | None:
    """One endpoint by id; None when AWS says it does not exist.

    With ``recently_created`` a NotFound is raised as a retryable AwsError instead, since right
    after CreateVpcEndpoint it means "not visible yet", not "gone".
    """
    try:
        response = await ctx.call(
            "ec2",
            "DescribeVpcEndpoints",
            recently_created=recently_created,
            VpcEndpointIds=[endpoint_id],
        )
    except errors.AwsError as err:
        if errors.is_not_found(err) and not err.retryable:
            return None
        raise
    found: list[dict[str, Any]] = response.get("VpcEndpoints", [])
    return found[0] if found else None


async def delete_endpoints(
    ctx: calls.Context, endpoint_ids: Iterable[str]
) -> list[errors.AwsError]:
    """DeleteVpcEndpoints in batches; returns the per-endpoint failures, NotFound excluded.

    Respects: the batch call answers 200 with failures inside ``Unsuccessful[]``; an endpoint
    that no longer exists is already deleted, which is what the caller wanted (idempotent).
    Each failure's message starts with the endpoint id.
    """
    failures: list[errors.AwsError] = []
    for batch in calls.chunks(endpoint_ids):
        response = await ctx.call("ec2", "DeleteVpcEndpoints", VpcEndpointIds=batch)
        for item in calls.unsuccessful(response, "DeleteVpcEndpoints"):
            if not errors.is_not_found(item.error):
                failures.append(item.error)
    return failures
