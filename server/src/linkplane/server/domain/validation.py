"""Validation of resource specs: every rule that can be checked without AWS.

Each `check_*` returns field violations whose paths are the request's field paths (the caller
passes the prefix, e.g. `service`), so a user sees exactly which field to fix. Limits mirror
AWS's own where AWS has one (endpoint policy 20,480 characters, principal ARN shapes without
paths), so a request linkplane accepts does not fail later in AWS for a reason we could see.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from linkplane.server.domain import endpoints, filters, names
from linkplane.server.domain.errors import FieldViolation
from linkplane.server.domain.specs import AccountSpec, ConnectionSpec, ServiceSpec

REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$")
VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
NLB_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:"
    r"loadbalancer/net/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@-]{1,64}$")
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
# AWS rejects principal ARNs with paths (arn:aws:iam::1:role/path/name), so these do too.
PRINCIPAL_PATTERNS = (
    re.compile(r"^[0-9]{12}$"),
    re.compile(
        r"^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/[\w+=,.@-]{1,64}|user/[\w+=,.@-]{1,64})$"
    ),
    re.compile(r"^arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$"),
    re.compile(
        r"^arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$"
    ),
)
SERVICE_NAME = re.compile(r"^com\.amazonaws\.[a-z0-9-]+(\.[a-z0-9-]+)+$")
DNS_NAME = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
)
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
# C0 and C1 control characters; free text keeps tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

MAX_DISPLAY_NAME = 63
MAX_LABELS = 64
MAX_POLICY_DOCUMENT = 20_480
MAX_REQUEST_MESSAGE = 1024
MAX_PRINCIPALS = 1000
MAX_SUBNETS = 16
MAX_SECURITY_GROUPS = 5
MAX_LISTENERS = 50
MAX_TARGETS = 500
MAX_JSON_DEPTH = 32  # IAM policies nest about five deep; this bounds the parser's recursion
MAX_STRING = 4096  # any request string without its own entry in FIELD_LIMITS


@dataclass(frozen=True)
class FieldLimit:
    """The longest value of a request string field, and the columns the value is stored in.

    Every column listed must hold `max_length` characters (a test compares this table with
    `storage.models`), so a value that passes validation never overflows its column.
    """

    max_length: int
    columns: tuple[str, ...] = ()  # "table.column"; () when stored only in JSONB or Text
    multiline: bool = False  # free text: tab, newline and carriage return are allowed


# Request string fields by name, wherever they appear in a request. Formats (regular
# expressions) are checked by the `check_*` functions; this table bounds every length first.
FIELD_LIMITS: dict[str, FieldLimit] = {
    "name": FieldLimit(200, ("services.name", "connections.name", "accounts.name")),
    "parent": FieldLimit(200),
    "service": FieldLimit(200, ("connections.service", "audit_log.resource")),
    "provider_account": FieldLimit(200, ("services.provider_account",)),
    "consumer_account": FieldLimit(200, ("connections.consumer_account",)),
    "display_name": FieldLimit(
        MAX_DISPLAY_NAME,
        ("accounts.display_name", "services.display_name", "connections.display_name"),
    ),
    "region": FieldLimit(32, ("services.region", "connections.region")),
    "service_region": FieldLimit(32),
    "allowed_regions": FieldLimit(32),
    "supported_regions": FieldLimit(32),
    "account_id": FieldLimit(12, ("accounts.aws_account_id",)),
    "vpc_id": FieldLimit(32, ("connections.vpc_id",)),
    "endpoint_ids": FieldLimit(32, ("connection_decisions.endpoint_id",)),
    "service_name": FieldLimit(255, ("connections.service_name",)),
    "service_id": FieldLimit(63),
    "connection_id": FieldLimit(63),
    "request_id": FieldLimit(36, ("request_ids.request_id", "audit_log.request_id")),
    "etag": FieldLimit(64),
    "filter": FieldLimit(filters.MAX_FILTER_LENGTH),
    "page_token": FieldLimit(1024),
    "policy_document": FieldLimit(MAX_POLICY_DOCUMENT, multiline=True),
    "request_message": FieldLimit(MAX_REQUEST_MESSAGE, multiline=True),
    "reason": FieldLimit(1024, multiline=True),
    "role_arn": FieldLimit(2048),
    "external_id": FieldLimit(1224),
    "private_dns_name": FieldLimit(255),
    "paths": FieldLimit(100),
}

LISTENER_PROTOCOLS = {"TCP", "TLS", "UDP", "TCP_UDP"}
SERVICE_IP_TYPES = {"ipv4", "ipv6"}
ENDPOINT_IP_TYPES = {"", "ipv4", "ipv6", "dualstack"}


def is_principal(value: str) -> bool:
    return value == "*" or any(p.match(value) for p in PRINCIPAL_PATTERNS)


def check_account(spec: AccountSpec, prefix: str, aws_account_id: str) -> list[FieldViolation]:
    out = _common(spec.display_name, spec.labels, prefix)
    if spec.role_arn:
        if not ROLE_ARN.match(spec.role_arn):
            out.append(_v(prefix, "role_arn", "must be arn:aws:iam::{account}:role/{name}"))
        elif aws_account_id and spec.role_arn.split(":")[4] != aws_account_id:
            out.append(_v(prefix, "role_arn", f"must be a role in account {aws_account_id}"))
    if spec.external_id and not EXTERNAL_ID.match(spec.external_id):
        out.append(_v(prefix, "external_id", "must be 2-1224 characters of [\\w+=,.@:/-]"))
    if spec.external_id and not spec.role_arn:
        out.append(_v(prefix, "external_id", "needs role_arn: it is presented on AssumeRole"))
    out += _regions(spec.allowed_regions, f"{prefix}.allowed_regions")
    return out


def check_service(spec: ServiceSpec, prefix: str) -> list[FieldViolation]:
    out = _common(spec.display_name, spec.labels, prefix)
    out += _account_ref(spec.provider_account, f"{prefix}.provider_account")
    out += _region(spec.region, f"{prefix}.region", required=True)
    out += _load_balancer(spec, f"{prefix}.load_balancer")
    policy = spec.acceptance_policy
    path = f"{prefix}.acceptance_policy"
    if policy.mode not in {"MANUAL", "AUTOMATIC"}:
        out.append(FieldViolation(f"{path}.mode", "must be MODE_MANUAL or MODE_AUTOMATIC"))
    seen: set[str] = set()
    for i, rule in enumerate(policy.accept_rules):
        rule_path = f"{path}.accept_rules[{i}]"
        if not is_principal(rule.principal) or rule.principal == "*":
            out.append(FieldViolation(f"{rule_path}.principal", _PRINCIPAL_HELP))
        if rule.principal in seen:
            out.append(FieldViolation(f"{rule_path}.principal", "is listed twice"))
        seen.add(rule.principal)
        if rule.connection_limit < 0:
            out.append(FieldViolation(f"{rule_path}.connection_limit", "must not be negative"))
    if len(policy.accept_rules) > MAX_PRINCIPALS:
        out.append(FieldViolation(f"{path}.accept_rules", f"at most {MAX_PRINCIPALS} rules"))
    out += _principals(policy.reject_principals, f"{path}.reject_principals", allow_star=False)
    for i, principal in enumerate(policy.reject_principals):
        if principal in seen:
            out.append(FieldViolation(f"{path}.reject_principals[{i}]", "is also in accept_rules"))
    out += _principals(spec.allowed_principals, f"{prefix}.allowed_principals", allow_star=True)
    if spec.private_dns_name and (
        len(spec.private_dns_name) > 255 or not DNS_NAME.match(spec.private_dns_name)
    ):
        out.append(_v(prefix, "private_dns_name", "must be a lower-case DNS name"))
    out += _unique_choice(
        spec.supported_ip_address_types,
        SERVICE_IP_TYPES,
        f"{prefix}.supported_ip_address_types",
        "must be IP_ADDRESS_TYPE_IPV4 or IP_ADDRESS_TYPE_IPV6",
    )
    out += _regions(spec.supported_regions, f"{prefix}.supported_regions")
    return out


def check_connection(spec: ConnectionSpec, prefix: str) -> list[FieldViolation]:
    out = _common(spec.display_name, spec.labels, prefix)
    if bool(spec.service) == bool(spec.service_name):
        out.append(_v(prefix, "service", "set exactly one of service or service_name"))
    elif spec.service and names.parse_name(spec.service, "services") is None:
        out.append(_v(prefix, "service", "must be projects/{project}/services/{service}"))
    elif spec.service_name and (
        len(spec.service_name) > 255 or not SERVICE_NAME.match(spec.service_name)
    ):
        out.append(_v(prefix, "service_name", "must be an AWS service name, com.amazonaws.…"))
    out += _account_ref(spec.consumer_account, f"{prefix}.consumer_account")
    out += _region(spec.region, f"{prefix}.region", required=True)
    out += _region(spec.service_region, f"{prefix}.service_region", required=False)
    if not VPC_ID.match(spec.vpc_id):
        out.append(_v(prefix, "vpc_id", "must be a VPC id, vpc-…"))
    # How many subnets (and route tables) are needed depends on the endpoint kind.
    out += endpoints.check_kind(spec, prefix)
    out += _ids(
        spec.subnet_ids, SUBNET_ID, f"{prefix}.subnet_ids", "subnet-…", least=0, most=MAX_SUBNETS
    )
    out += _ids(
        spec.security_group_ids,
        SECURITY_GROUP_ID,
        f"{prefix}.security_group_ids",
        "sg-…",
        least=0,
        most=MAX_SECURITY_GROUPS,
    )
    if spec.ip_address_type not in ENDPOINT_IP_TYPES:
        out.append(_v(prefix, "ip_address_type", "unknown IP address type"))
    if spec.policy_document:
        if len(spec.policy_document) > MAX_POLICY_DOCUMENT:
            out.append(_v(prefix, "policy_document", f"at most {MAX_POLICY_DOCUMENT} characters"))
        elif json_depth(spec.policy_document) > MAX_JSON_DEPTH:
            out.append(_v(prefix, "policy_document", f"nests deeper than {MAX_JSON_DEPTH} levels"))
        elif not _is_json_object(spec.policy_document):
            out.append(_v(prefix, "policy_document", "must be a JSON object (an IAM policy)"))
    if len(spec.request_message) > MAX_REQUEST_MESSAGE:
        out.append(_v(prefix, "request_message", f"at most {MAX_REQUEST_MESSAGE} characters"))
    return out


_PRINCIPAL_HELP = (
    "must be a 12-digit account id, an IAM ARN without a path (…:root, …:role/x, …:user/x), "
    "or an organization/OU ARN"
)


def _v(prefix: str, name: str, description: str) -> FieldViolation:
    return FieldViolation(f"{prefix}.{name}", description)


def _common(display_name: str, labels: dict[str, str], prefix: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if len(display_name) > MAX_DISPLAY_NAME:
        out.append(_v(prefix, "display_name", f"at most {MAX_DISPLAY_NAME} characters"))
    if len(labels) > MAX_LABELS:
        out.append(_v(prefix, "labels", f"at most {MAX_LABELS} labels"))
    for key, value in labels.items():
        if not LABEL_KEY.match(key):
            out.append(
                FieldViolation(
                    f"{prefix}.labels[{key[:64]!r}]", "key must match [a-z][a-z0-9_-]{0,62}"
                )
            )
        elif not LABEL_VALUE.match(value):
            out.append(
                FieldViolation(f"{prefix}.labels[{key!r}]", "value must match [a-z0-9_-]{0,63}")
            )
    return out


def _account_ref(value: str, path: str) -> list[FieldViolation]:
    if not value:
        return [FieldViolation(path, "is required")]
    if names.parse_name(value, "accounts") is None:
        return [FieldViolation(path, "must be projects/{project}/accounts/{12-digit id}")]
    return []


def _region(value: str, path: str, *, required: bool) -> list[FieldViolation]:
    if not value:
        return [FieldViolation(path, "is required")] if required else []
    if not REGION.match(value):
        return [FieldViolation(path, "must be an AWS region such as us-east-1")]
    return []


def _regions(values: Iterable[str], path: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    seen: set[str] = set()
    for i, value in enumerate(values):
        if not REGION.match(value):
            out.append(FieldViolation(f"{path}[{i}]", "must be an AWS region such as us-east-1"))
        elif value in seen:
            out.append(FieldViolation(f"{path}[{i}]", "is listed twice"))
        seen.add(value)
    return out


def _principals(values: list[str], path: str, *, allow_star: bool) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if len(values) > MAX_PRINCIPALS:
        out.append(FieldViolation(path, f"at most {MAX_PRINCIPALS} principals"))
    seen: set[str] = set()
    for i, value in enumerate(values):
        if not is_principal(value) or (value == "*" and not allow_star):
            out.append(FieldViolation(f"{path}[{i}]", _PRINCIPAL_HELP))
        elif value in seen:
            out.append(FieldViolation(f"{path}[{i}]", "is listed twice"))
        seen.add(value)
    return out


def _ids(
    values: list[str], pattern: re.Pattern[str], path: str, shape: str, *, least: int, most: int
) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if len(values) < least:
        out.append(FieldViolation(path, f"at least {least} required"))
    if len(values) > most:
        out.append(FieldViolation(path, f"at most {most} allowed"))
    seen: set[str] = set()
    for i, value in enumerate(values):
        if not pattern.match(value):
            out.append(FieldViolation(f"{path}[{i}]", f"must look like {shape}"))
        elif value in seen:
            out.append(FieldViolation(f"{path}[{i}]", "is listed twice"))
        seen.add(value)
    return out


def _unique_choice(
    values: list[str], allowed: set[str], path: str, help_text: str
) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value not in allowed:
            out.append(FieldViolation(f"{path}[{i}]", help_text))
        elif value in seen:
            out.append(FieldViolation(f"{path}[{i}]", "is listed twice"))
        seen.add(value)
    return out


def _load_balancer(spec: ServiceSpec, path: str) -> list[FieldViolation]:
    lb = spec.load_balancer
    if bool(lb.adopted_arns) == (lb.managed is not None):
        return [FieldViolation(path, "set exactly one of adopted or managed")]
    if lb.adopted_arns:
        arns_path = f"{path}.adopted.network_load_balancer_arns"
        return _ids(
            lb.adopted_arns,
            NLB_ARN,
            arns_path,
            "an NLB ARN (…:loadbalancer/net/…)",
            least=1,
            most=10,
        )
    assert lb.managed is not None
    managed, mpath = lb.managed, f"{path}.managed"
    out = _ids(
        managed.subnet_ids, SUBNET_ID, f"{mpath}.subnet_ids", "subnet-…", least=1, most=MAX_SUBNETS
    )
    if not managed.listeners:
        out.append(FieldViolation(f"{mpath}.listeners", "at least 1 required"))
    if len(managed.listeners) > MAX_LISTENERS:
        out.append(FieldViolation(f"{mpath}.listeners", f"at most {MAX_LISTENERS} allowed"))
    ports: set[int] = set()
    for i, listener in enumerate(managed.listeners):
        lpath = f"{mpath}.listeners[{i}]"
        if not 1 <= listener.port <= 65535:
            out.append(FieldViolation(f"{lpath}.port", "must be 1 to 65535"))
        elif listener.port in ports:
            out.append(FieldViolation(f"{lpath}.port", "is used by another listener"))
        ports.add(listener.port)
        if not 0 <= listener.target_port <= 65535:
            out.append(FieldViolation(f"{lpath}.target_port", "must be 0 to 65535"))
        if listener.protocol not in LISTENER_PROTOCOLS:
            out.append(FieldViolation(f"{lpath}.protocol", "unknown protocol"))
    if len(managed.targets) > MAX_TARGETS:
        out.append(FieldViolation(f"{mpath}.targets", f"at most {MAX_TARGETS} allowed"))
    for i, target in enumerate(managed.targets):
        tpath = f"{mpath}.targets[{i}]"
        if not (_is_ipv4(target.id) or INSTANCE_ID.match(target.id)):
            out.append(FieldViolation(f"{tpath}.id", "must be an IPv4 address or an instance id"))
        if not 0 <= target.port <= 65535:
            out.append(FieldViolation(f"{tpath}.port", "must be 0 to 65535"))
    return out


def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def json_depth(text: str) -> int:
    """How deeply `text`'s arrays and objects nest, counted without parsing (no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def string_problem(value: str, limit: FieldLimit) -> str | None:
    """Why a request string is unacceptable whatever its field means, or None.

    NUL cannot be stored by Postgres, and no field has a use for other control characters
    (free text may hold tab, newline and carriage return).
    """
    if len(value) > limit.max_length:
        return f"at most {limit.max_length} characters"
    found = (_CONTROL_IN_TEXT if limit.multiline else _CONTROL).search(value)
    if found:
        return f"must not contain control characters (found U+{ord(found.group()):04X})"
    return None
