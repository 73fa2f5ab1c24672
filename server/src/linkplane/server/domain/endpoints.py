"""What kind of VPC endpoint a Connection is, and the rules each kind must follow.

AWS has two endpoint kinds a consumer uses: *interface* endpoints (an ENI with a private IP in
each chosen subnet; any endpoint service, acceptance, private DNS, cross-region) and *gateway*
endpoints (routes to the service's prefix list in chosen route tables; only Amazon S3 and
DynamoDB, in the VPC's own region, no ENIs, no security groups, no acceptance). AWS's API
defaults to Gateway when the type is left out, which is why linkplane always sends it.

`check_kind` gives each mistake a field violation naming the field to fix, so a wrong mix
(a gateway to SQS, route tables on an interface endpoint) fails at the API instead of as an
AWS error minutes later. `aws_service` recognises names of AWS's own services, which need no
acceptance and whose private DNS names are always usable.
"""

from __future__ import annotations

import re

from linkplane.server.domain.errors import FieldViolation
from linkplane.server.domain.specs import ConnectionSpec

INTERFACE = "interface"
GATEWAY = "gateway"
ENDPOINT_TYPES = {"", INTERFACE, GATEWAY}
GATEWAY_SERVICES = ("s3", "dynamodb")
"""The AWS services that offer gateway endpoints."""

ROUTE_TABLE_ID = re.compile(r"^rtb-[0-9a-f]{8,17}$")
MAX_ROUTE_TABLES = 50
# An AWS service's name: com.amazonaws.<region>.<service>; endpoint services of providers are
# com.amazonaws.vpce.<region>.vpce-svc-... (and partner services com.amazonaws.vpce.<region>...).
AWS_SERVICE = re.compile(
    r"^com\.amazonaws\.(?P<region>[a-z]{2}(-[a-z]+)+-[0-9]{1,2})\.(?P<name>.+)$"
)


def aws_service(service_name: str) -> str:
    """The short name of an AWS service (``sqs``) for ``com.amazonaws.<region>.sqs``; empty
    for providers' endpoint services (``com.amazonaws.vpce.…``)."""
    match = AWS_SERVICE.match(service_name)
    return match.group("name") if match else ""


def service_region_of(service_name: str) -> str:
    """The region named in an AWS service's name; empty for providers' endpoint services."""
    match = AWS_SERVICE.match(service_name)
    return match.group("region") if match else ""


def gateway_capable(service_name: str) -> bool:
    """Whether AWS offers gateway endpoints for this service name (S3 and DynamoDB)."""
    return aws_service(service_name) in GATEWAY_SERVICES


def check_kind(spec: ConnectionSpec, prefix: str) -> list[FieldViolation]:
    """The rules of the spec's endpoint kind; subnets are counted here, not by the caller."""
    if spec.endpoint_type not in ENDPOINT_TYPES:
        return [FieldViolation(f"{prefix}.endpoint_type", "unknown endpoint type")]
    if spec.gateway:
        return _gateway(spec, prefix)
    out: list[FieldViolation] = []
    if not spec.subnet_ids:
        out.append(FieldViolation(f"{prefix}.subnet_ids", "at least 1 required"))
    if spec.route_table_ids:
        out.append(
            FieldViolation(
                f"{prefix}.route_table_ids",
                "route tables are for gateway endpoints (endpoint_type ENDPOINT_TYPE_GATEWAY, "
                "S3 and DynamoDB only); an interface endpoint uses subnet_ids",
            )
        )
    return out


def _gateway(spec: ConnectionSpec, prefix: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    wanted = " or ".join(f"com.amazonaws.{spec.region or '<region>'}.{s}" for s in GATEWAY_SERVICES)
    if spec.service:
        out.append(
            FieldViolation(
                f"{prefix}.endpoint_type",
                f"a gateway endpoint connects only to {wanted}; a linkplane service needs an "
                "interface endpoint",
            )
        )
    elif spec.service_name and not gateway_capable(spec.service_name):
        out.append(
            FieldViolation(
                f"{prefix}.endpoint_type",
                f"AWS offers gateway endpoints only for {wanted}, not {spec.service_name}; use an "
                "interface endpoint",
            )
        )
    elif spec.service_name and service_region_of(spec.service_name) != spec.region:
        out.append(
            FieldViolation(
                f"{prefix}.service_name",
                f"a gateway endpoint reaches the service in its own region: expected {wanted}",
            )
        )
    if spec.cross_region:
        out.append(
            FieldViolation(f"{prefix}.service_region", "gateway endpoints cannot be cross-region")
        )
    if not spec.route_table_ids:
        out.append(
            FieldViolation(
                f"{prefix}.route_table_ids", "at least 1 route table required for a gateway"
            )
        )
    if len(spec.route_table_ids) > MAX_ROUTE_TABLES:
        out.append(
            FieldViolation(f"{prefix}.route_table_ids", f"at most {MAX_ROUTE_TABLES} allowed")
        )
    seen: set[str] = set()
    for i, value in enumerate(spec.route_table_ids):
        if not ROUTE_TABLE_ID.match(value):
            out.append(FieldViolation(f"{prefix}.route_table_ids[{i}]", "must look like rtb-…"))
        elif value in seen:
            out.append(FieldViolation(f"{prefix}.route_table_ids[{i}]", "is listed twice"))
        seen.add(value)
    for name, present in (
        ("subnet_ids", bool(spec.subnet_ids)),
        ("security_group_ids", bool(spec.security_group_ids)),
        ("ip_address_type", bool(spec.ip_address_type)),
        ("private_dns_enabled", spec.private_dns_enabled),
    ):
        if present:
            out.append(
                FieldViolation(
                    f"{prefix}.{name}",
                    "not used by a gateway endpoint (it has no network interfaces); leave it "
                    "unset or use an interface endpoint",
                )
            )
    return out
