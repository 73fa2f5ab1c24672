"""Provider-side steps: VPC endpoint services (``vpce-svc-…``) and their connections.

Thin, idempotent helpers over ``calls`` for publishing a service behind NLBs, finding it by
ownership tag, deciding on consumers' connection requests and tearing it down in the order AWS
demands (reject live connections, then delete the service, then the NLB).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from linkplane.server.aws import calls, errors, tags

EXISTING_CONNECTIONS = "ExistingVpcEndpointConnections"
"""The code DeleteVpcEndpointServiceConfigurations reports while connections are live."""

LIVE_CONNECTION_STATES = frozenset({"pendingacceptance", "pending", "available"})
"""Connection states (lower-cased) that block deleting the service: reject these first."""


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
        if str(c.get("VpcEndpointState", "")).lower() in LIVE_CONNECTION_STATES
    ]
