"""Provider-side steps: VPC endpoint services (``vpce-svc-…``) and their connections.

Thin, idempotent helpers over ``calls`` for publishing a service behind NLBs, finding it by
ownership tag, deciding on consumers' connection requests and tearing it down in the order AWS
demands (reject live connections, then delete the service, then the NLB).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from linkplane.server.aws import calls, errors, tags
from linkplane.server.domain import states

EXISTING_CONNECTIONS = "ExistingVpcEndpointConnections"
"""The code DeleteVpcEndpointServiceConfigurations reports while connections are live."""


async def create_endpoint_service(
    ctx: calls.Context,
    *,
    uid: str,
    generation: int,
    name: str,
    network_load_balancer_arns: Sequence[str],
    acceptance_required: bool = True,
    labels: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """CreateVpcEndpointServiceConfiguration; returns the ``ServiceConfiguration``.

    Respects: a deterministic ClientToken and ``linkplane:uid`` TagSpecifications, so a retry
    after a crash returns or finds (:func:`find_endpoint_service_by_uid`) the same service.
    Acceptance is required by default: linkplane decides on each consumer itself (AWS's own
    choice is all-or-nothing per service). Principal grants are a separate call
    (ModifyVpcEndpointServicePermissions), so creation is not atomic with them. ``extra``
    passes PrivateDnsName, SupportedIpAddressTypes, SupportedRegions through.
    """
    params = calls.merge_params(
        {
            "AcceptanceRequired": acceptance_required,
            "NetworkLoadBalancerArns": list(network_load_balancer_arns),
            "ClientToken": tags.deterministic_client_token(uid, generation, "endpoint-service"),
            "TagSpecifications": tags.linkplane_tags(uid, "endpoint-service", name, labels),
        },
        extra,
    )
    response = await ctx.call("ec2", "CreateVpcEndpointServiceConfiguration", **params)
    service: dict[str, Any] = response["ServiceConfiguration"]
    return service


async def find_endpoint_services_by_uid(ctx: calls.Context, uid: str) -> list[dict[str, Any]]:
    """Every endpoint service tagged ``linkplane:uid=<uid>``, all pages, in id order."""
    found = await ctx.collect(
        "ec2",
        "DescribeVpcEndpointServiceConfigurations",
        "ServiceConfigurations",
        Filters=tags.uid_filter(uid),
    )
    # Checked again client-side: a backend that ignores Filters (moto does) must not make
    # linkplane adopt a service it does not own.
    owned = [s for s in found if tags.tag_value(s, tags.UID_KEY) == uid]
    return sorted(owned, key=lambda s: str(s.get("ServiceId", "")))


async def find_endpoint_service_by_uid(ctx: calls.Context, uid: str) -> dict[str, Any] | None:
    """The endpoint service to adopt for a resource, or None (then, and only then, create).

    Services that are Deleting or Deleted are skipped: they cannot be brought back. A Failed
    one is returned, so the reconciler sees and reports the failure; replacing it needs a new
    ClientToken (a new generation), or AWS would hand the failed service back.
    """
    for service in await find_endpoint_services_by_uid(ctx, uid):
        state = str(service.get("ServiceState", "")).lower()
        if state not in {"deleting", "deleted"}:
            return service
    return None


async def describe_endpoint_connections(
    ctx: calls.Context, service_id: str, *, states: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Every connection request to a service, all pages; optionally only in some states.

    Respects: DescribeVpcEndpointConnections is paginated and filters by ``service-id`` (and
    ``vpc-endpoint-state``, whose values are compared case-insensitively here too).
    """
    filters: list[dict[str, Any]] = [{"Name": "service-id", "Values": [service_id]}]
    wanted = {s.lower() for s in states} if states is not None else None
    connections = await ctx.collect(
        "ec2", "DescribeVpcEndpointConnections", "VpcEndpointConnections", Filters=filters
    )
    return [
        c
        for c in connections
        if c.get("ServiceId", service_id) == service_id
        and (wanted is None or str(c.get("VpcEndpointState", "")).lower() in wanted)
    ]


async def accept_connections(
    ctx: calls.Context, service_id: str, endpoint_ids: Iterable[str]
) -> tuple[list[str], list[calls.Unsuccessful]]:
    """Accept consumers' connection requests; returns (accepted ids, unsuccessful items).

    Respects: AcceptVpcEndpointConnections takes a list and reports partial failure in
    ``Unsuccessful[]`` inside a 200; ids are de-duplicated and sent in batches of
    ``calls.BATCH_SIZE`` so one decision call serves many consumers (the family's bucket is
    only 10 calls, 1 per second).
    """
    return await _decide(ctx, "AcceptVpcEndpointConnections", service_id, endpoint_ids)


async def reject_connections(
    ctx: calls.Context, service_id: str, endpoint_ids: Iterable[str]
) -> tuple[list[str], list[calls.Unsuccessful]]:
    """Reject connection requests or live connections; returns (rejected, unsuccessful).

    Rejecting is also how live connections are cut before the service can be deleted, and
    how a consumer whose principal was removed is disconnected (removing the principal alone
    does not). Same batching and ``Unsuccessful[]`` handling as :func:`accept_connections`.
    """
    return await _decide(ctx, "RejectVpcEndpointConnections", service_id, endpoint_ids)


async def _decide(
    ctx: calls.Context, action: str, service_id: str, endpoint_ids: Iterable[str]
) -> tuple[list[str], list[calls.Unsuccessful]]:
    done: list[str] = []
    failed: list[calls.Unsuccessful] = []
    for batch in calls.chunks(endpoint_ids):
        response = await ctx.call("ec2", action, ServiceId=service_id, VpcEndpointIds=batch)
        items = calls.unsuccessful(response, action)
        failed_ids = {item.resource_id for item in items}
        done.extend(i for i in batch if i not in failed_ids)
        failed.extend(items)
    return done, failed


async def delete_endpoint_service(ctx: calls.Context, service_id: str) -> bool:
    """Delete an endpoint service; True if deleted now, False if it was already gone.

    Respects: DeleteVpcEndpointServiceConfigurations answers 200 and reports per-item failure
    in ``Unsuccessful[]``; those are raised here as AwsError, notably
    ``ExistingVpcEndpointConnections`` (retryable as a conflict) while any connection is
    Available or PendingAcceptance: reject them first (:func:`reject_connections`). A service
    that does not exist counts as deleted (idempotent).
    """
    action = "DeleteVpcEndpointServiceConfigurations"
    try:
        response = await ctx.call("ec2", action, ServiceIds=[service_id])
    except errors.AwsError as err:
        if errors.is_not_found(err):
            return False
        raise
    for item in calls.unsuccessful(response, action):
        if item.resource_id not in (service_id, ""):
            continue
        if errors.is_not_found(item.error):
            return False
        raise item.error
    return True


def live_connection_ids(connections: Iterable[Mapping[str, Any]]) -> list[str]:
    """The endpoint ids of connections that block deleting the service."""
    return [
        str(c["VpcEndpointId"])
        for c in connections
        if states.normalise_endpoint_state(c.get("VpcEndpointState"))
        in states.DELETE_BLOCKING_ENDPOINT_STATES
    ]


GONE_REGION_STATES = frozenset({"deleting", "deleted", "closed"})
"""Supported-region states (lower-cased) that no longer count as supported."""


@dataclass(frozen=True)
class PrivateDnsRecord:
    """The TXT record proving ownership of a service's private DNS name, and its state."""

    name: str
    value: str
    state: str
    """``PENDING_VERIFICATION``, ``VERIFIED``, ``FAILED`` or ``UNSPECIFIED``."""

    @property
    def verified(self) -> bool:
        return self.state == "VERIFIED"


@dataclass(frozen=True)
class EndpointServiceConfiguration:
    """An endpoint service as DescribeVpcEndpointServiceConfigurations reports it.

    IP address types are lower-cased (AWS answers ``ipv4``/``ipv6``) and default to ipv4 when
    absent; ``supported_regions`` leaves out the home Region and Regions AWS is removing or
    has closed, so both compare directly with the spec.
    """

    service_id: str
    service_name: str
    state: str
    acceptance_required: bool
    network_load_balancer_arns: frozenset[str]
    private_dns_name: str
    private_dns: PrivateDnsRecord | None
    supported_ip_address_types: frozenset[str]
    supported_regions: frozenset[str]
    base_endpoint_dns_names: tuple[str, ...]
    availability_zones: tuple[str, ...]
    raw: Mapping[str, Any]
    """The AWS answer, for what reads tags (reconciler/labels.py)."""

    @classmethod
    def from_aws(cls, data: Mapping[str, Any], home_region: str) -> EndpointServiceConfiguration:
        dns = data.get("PrivateDnsNameConfiguration") or {}
        regions = frozenset(
            str(r.get("Region", ""))
            for r in data.get("SupportedRegions") or []
            if r.get("Region")
            and r.get("Region") != home_region
            and str(r.get("ServiceState", "")).lower() not in GONE_REGION_STATES
        )
        return cls(
            service_id=str(data.get("ServiceId", "")),
            service_name=str(data.get("ServiceName", "")),
            state=str(data.get("ServiceState", "")).lower(),
            acceptance_required=bool(data.get("AcceptanceRequired")),
            network_load_balancer_arns=frozenset(data.get("NetworkLoadBalancerArns") or []),
            private_dns_name=str(data.get("PrivateDnsName") or ""),
            private_dns=PrivateDnsRecord(
                name=str(dns.get("Name", "")),
                value=str(dns.get("Value", "")),
                state=dns_state(str(dns.get("State", ""))),
            )
            if dns
            else None,
            supported_ip_address_types=frozenset(
                str(t).lower() for t in data.get("SupportedIpAddressTypes") or ["ipv4"]
            ),
            supported_regions=regions,
            base_endpoint_dns_names=tuple(data.get("BaseEndpointDnsNames") or []),
            availability_zones=tuple(sorted(data.get("AvailabilityZones") or [])),
            raw=data,
        )

    @property
    def available(self) -> bool:
        return self.state == "available"


def dns_state(value: str) -> str:
    """AWS's ``pendingVerification``/``verified``/``failed`` as linkplane's enum names."""
    return {
        "pendingverification": "PENDING_VERIFICATION",
        "verified": "VERIFIED",
        "failed": "FAILED",
    }.get(value.lower().replace("-", "").replace("_", ""), "UNSPECIFIED")


@dataclass(frozen=True)
class EndpointConnection:
    """One consumer endpoint's connection to a service (DescribeVpcEndpointConnections).

    AWS does not report the consumer's VPC here; linkplane knows it only for its own
    Connections (from their spec).
    """

    endpoint_id: str
    owner: str
    state: str
    """Normalised: ``PENDING_ACCEPTANCE``, ``AVAILABLE``, … (domain/states.py)."""
    region: str
    create_time: datetime | None
    dns_entries: tuple[tuple[str, str], ...]
    """(DNS name, hosted zone id) pairs."""

    @classmethod
    def from_aws(cls, data: Mapping[str, Any]) -> EndpointConnection:
        created = data.get("CreationTimestamp")
        return cls(
            endpoint_id=str(data["VpcEndpointId"]),
            owner=str(data.get("VpcEndpointOwner", "")),
            state=states.normalise_endpoint_state(str(data.get("VpcEndpointState", ""))),
            region=str(data.get("VpcEndpointRegion") or ""),
            create_time=created if isinstance(created, datetime) else None,
            dns_entries=tuple(
                (str(d.get("DnsName", "")), str(d.get("HostedZoneId", "")))
                for d in data.get("DnsEntries") or []
            ),
        )


async def find_configuration(ctx: calls.Context, uid: str) -> EndpointServiceConfiguration | None:
    """:func:`find_endpoint_service_by_uid`, typed."""
    found = await find_endpoint_service_by_uid(ctx, uid)
    return EndpointServiceConfiguration.from_aws(found, ctx.region) if found else None


async def describe_connections(ctx: calls.Context, service_id: str) -> list[EndpointConnection]:
    """:func:`describe_endpoint_connections`, typed."""
    return [
        EndpointConnection.from_aws(c) for c in await describe_endpoint_connections(ctx, service_id)
    ]


async def modify_configuration(ctx: calls.Context, service_id: str, **params: Any) -> None:
    """ModifyVpcEndpointServiceConfiguration with only the changed parameters.

    Respects: AcceptanceRequired, Add/Remove NLBs, PrivateDnsName/RemovePrivateDnsName,
    Add/RemoveSupportedIpAddressTypes (``ipv6`` needs a dual-stack NLB) and
    Add/RemoveSupportedRegions are all one action; callers guard repeats.
    """
    await ctx.call("ec2", "ModifyVpcEndpointServiceConfiguration", ServiceId=service_id, **params)


async def allowed_principals(ctx: calls.Context, service_id: str) -> frozenset[str]:
    """The principals DescribeVpcEndpointServicePermissions reports, all pages."""
    found = await ctx.collect(
        "ec2", "DescribeVpcEndpointServicePermissions", "AllowedPrincipals", ServiceId=service_id
    )
    return frozenset(str(p["Principal"]) for p in found)


async def modify_permissions(
    ctx: calls.Context, service_id: str, *, add: Sequence[str], remove: Sequence[str]
) -> None:
    """ModifyVpcEndpointServicePermissions. Removing a principal does not disconnect its
    endpoints: reject them (:func:`reject_connections`) for that."""
    params: dict[str, Any] = {"ServiceId": service_id}
    if add:
        params["AddAllowedPrincipals"] = list(add)
    if remove:
        params["RemoveAllowedPrincipals"] = list(remove)
    await ctx.call("ec2", "ModifyVpcEndpointServicePermissions", **params)


async def start_private_dns_verification(ctx: calls.Context, service_id: str) -> None:
    """StartVpcEndpointServicePrivateDnsVerification: AWS looks for the TXT record now.

    Respects: the record must exist first, or the state ends ``failed``; asking again later
    is how a failed verification is retried (callers bound the rate)."""
    await ctx.call("ec2", "StartVpcEndpointServicePrivateDnsVerification", ServiceId=service_id)
