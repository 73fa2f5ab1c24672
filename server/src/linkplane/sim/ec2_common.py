"""What every PrivateLink action the simulator serves needs: who calls, idempotency, paging,
visibility of services, refusing unmodelled fields, DryRun.

Shared by ``ec2_endpoints`` (the consumer's endpoints) and ``ec2_actions`` (services,
connections, and the ``install()`` that serves both through moto's ``EC2Response``).
"""

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable

from moto.core.responses import ActionResult
from moto.ec2 import exceptions as ec2_errors
from moto.ec2.responses import EC2Response

from linkplane.sim import catalog, models, params, world

# Request parameters that do not take part in ClientToken idempotency.
_NOT_FINGERPRINTED = frozenset({"Action", "Version", "ClientToken", "DryRun"})

Json = dict[str, object]


# Request helpers -------------------------------------------------------------------------------


class Caller:
    """Who is calling and where, as moto resolved it (assumed roles included)."""

    def __init__(self, response: EC2Response) -> None:
        self.account: str = response.current_account
        self.region: str = response.region
        self.access_key: str = response.get_access_key()


def fingerprint(response: EC2Response) -> str:
    querystring: dict[str, list[str]] = response.querystring
    items = sorted(
        (key, value)
        for key, values in querystring.items()
        if key not in _NOT_FINGERPRINTED
        for value in values
    )
    return json.dumps(items)


def replayed(sim: world.World, response: EC2Response, action: str, token: str | None) -> str | None:
    """The id created earlier with this ClientToken, or None when this call is new.

    Same token and parameters return the original object; different parameters are AWS's
    ``IdempotentParameterMismatch`` (HTTP 400).
    """
    if not token:
        return None
    caller = Caller(response)
    record = sim.client_tokens.get((caller.account, caller.region, action, token))
    if record is None:
        return None
    if record.fingerprint != fingerprint(response):
        raise ec2_errors.EC2ClientError(
            "IdempotentParameterMismatch",
            f"The client token '{token}' has already been used with different parameters.",
        )
    return record.resource_id


def remember(
    sim: world.World, response: EC2Response, action: str, token: str | None, resource_id: str
) -> None:
    if token:
        caller = Caller(response)
        key = (caller.account, caller.region, action, token)
        sim.remember_token(key, fingerprint(response), resource_id)


def unsuccessful(resource_id: str, code: str, message: str) -> Json:
    return {"ResourceId": resource_id, "Error": {"Code": code, "Message": message}}


def filters(response: EC2Response) -> dict[str, list[str]]:
    # moto annotates this dict[str, str]; it returns each filter's list of values.
    found: dict[str, list[str]] = response._filters_from_querystring()  # type: ignore[assignment]
    return found


def page(
    items: list[Json], response: EC2Response, limit: int = 1000
) -> tuple[list[Json], str | None]:
    """One page of ``items`` per MaxResults/NextToken; tokens are opaque offsets."""
    max_results = response._get_int_param("MaxResults") or limit
    token = response._get_param("NextToken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, binascii.Error) as exc:
            raise ec2_errors.InvalidNextToken(token) from exc
    end = start + min(max_results, limit)
    next_token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], next_token


# Service visibility ----------------------------------------------------------------------------


def allowed(sim: world.World, service: models.SimServiceConfiguration, caller: Caller) -> bool:
    """Whether ``caller`` may see and connect to ``service`` (the owner always may)."""
    if service.owner == caller.account:
        return True
    role_arn = sim.role_arn_for_access_key(caller.access_key, caller.account)
    accepted = {"*", caller.account, f"arn:aws:iam::{caller.account}:root"}
    if role_arn:
        accepted.add(role_arn)
    return any(principal in accepted for principal in service.principals)


def visible(sim: world.World, service: models.SimServiceConfiguration, caller: Caller) -> bool:
    """Whether ``caller`` (in its Region) sees ``service``: Available there, and allowed."""
    state = service.region_state(caller.region, sim.clock.now())
    return state == "Available" and allowed(sim, service, caller)


@dataclasses.dataclass(frozen=True)
class Target:
    """What a CreateVpcEndpoint names: a provider's endpoint service or one of AWS's."""

    name: str
    service: models.SimServiceConfiguration | None
    """The provider's service; None for an AWS service."""
    endpoint_types: tuple[str, ...]
    private_dns_name: str | None
    """The private name consumers can enable: AWS's, or a provider's once verified."""
    ip_address_types: tuple[str, ...]
    region: str

    @property
    def cross_region(self) -> bool:
        return self.service is not None and self.service.region_name != self.region


def target(
    sim: world.World, response: EC2Response, name: str, service_region: str | None
) -> Target:
    """The service ``name`` names for this caller; AWS's InvalidServiceName when it does not
    exist for the caller (unknown, not allowed, not offered in the caller's Region, not ready)."""
    caller = Caller(response)
    home = service_region or caller.region
    service = sim.service_by_name(name)
    if service is not None:
        if service.region_name != home or not visible(sim, service, caller):
            raise ec2_errors.InvalidServiceName(name)
        verification = service.dns_verification
        verified = verification is not None and verification.state == "verified"
        return Target(
            name=name,
            service=service,
            endpoint_types=(
                ("GatewayLoadBalancer",) if service.gateway_load_balancer_arns else ("Interface",)
            ),
            private_dns_name=service.private_dns_name if verified else None,
            ip_address_types=tuple(service.supported_ip_address_types),
            region=caller.region,
        )
    if home != caller.region:
        # Cross-Region endpoints to AWS services exist for a few services; not modelled here.
        raise ec2_errors.InvalidServiceName(name)
    entries = catalog.find(caller.region, name)
    if not entries:
        raise ec2_errors.InvalidServiceName(name)
    private = next((e.private_dns_name for e in entries if e.private_dns_name), None)
    return Target(
        name=name,
        service=None,
        endpoint_types=tuple(entry.service_type for entry in entries),
        private_dns_name=private,
        ip_address_types=("ipv4",),
        region=caller.region,
    )


def owned_service(
    sim: world.World, response: EC2Response, service_id: str
) -> models.SimServiceConfiguration:
    caller = Caller(response)
    service = sim.services.get(service_id)
    if service is None or service.owner != caller.account or service.region_name != caller.region:
        raise ec2_errors.UnknownVpcEndpointService(service_id)
    return service


# Refusals, DryRun and common errors ------------------------------------------------------------


def refuse_unmodelled(response: EC2Response, modelled: frozenset[str]) -> None:
    operation = str(response.querystring.get("Action", [""])[0])
    params.refuse_unmodelled(operation, response.querystring.keys(), modelled)


def dry_run(response: EC2Response) -> None:
    """AWS's DryRunOperation (HTTP 412) once the request is known to be valid."""
    if response._get_bool_param("DryRun"):
        raise ec2_errors.DryRunClientError()


def honouring_dry_run(
    moto_action: Callable[[EC2Response], ActionResult],
) -> Callable[[EC2Response], ActionResult]:
    """One of moto's read-only actions that ignores ``DryRun`` (it would answer the data),
    made to answer DryRunOperation first, as EC2 does; nothing else about it changes."""

    def action(self: EC2Response) -> ActionResult:
        dry_run(self)
        return moto_action(self)

    action.__name__ = moto_action.__name__
    return action


def not_found_endpoint(endpoint_id: str) -> Json:
    return unsuccessful(
        endpoint_id,
        "InvalidVpcEndpointId.NotFound",
        f"The VpcEndpoint Id '{endpoint_id}' does not exist",
    )
