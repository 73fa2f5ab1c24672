"""Converters between protobuf messages and the domain's specs and storage rows.

Input: protobuf → domain spec (unknown enum numbers become values validation rejects, so they
end in INVALID_ARGUMENT, never INTERNAL). Output: storage row → protobuf resource, including
status, etag and timestamps.

Why one module of ~460 lines: one converter pair per resource (Account, Service, Connection,
ServiceConnection, Operation, status), all built from the same timestamp, etag and enum
helpers; it is the one place where rows and specs meet the wire.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from google.longrunning import operations_pb2
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import status_pb2

from linkplane.server.domain import specs
from linkplane.server.storage import models
from linkplane.v1 import account_pb2, common_pb2, connection_pb2, service_pb2

IP_TYPES_IN: dict[Any, str] = {
    common_pb2.IP_ADDRESS_TYPE_UNSPECIFIED: "",
    common_pb2.IP_ADDRESS_TYPE_IPV4: "ipv4",
    common_pb2.IP_ADDRESS_TYPE_IPV6: "ipv6",
    common_pb2.IP_ADDRESS_TYPE_DUALSTACK: "dualstack",
}
IP_TYPES_OUT: dict[str, Any] = {v: k for k, v in IP_TYPES_IN.items()}
ENDPOINT_TYPES_IN: dict[Any, str] = {
    connection_pb2.Connection.ENDPOINT_TYPE_UNSPECIFIED: "",
    connection_pb2.Connection.ENDPOINT_TYPE_INTERFACE: "interface",
    connection_pb2.Connection.ENDPOINT_TYPE_GATEWAY: "gateway",
}
ENDPOINT_TYPES_OUT: dict[str, Any] = {v: k for k, v in ENDPOINT_TYPES_IN.items()}
PROTOCOLS_IN: dict[Any, str] = {
    service_pb2.Listener.PROTOCOL_UNSPECIFIED: "TCP",
    service_pb2.Listener.PROTOCOL_TCP: "TCP",
    service_pb2.Listener.PROTOCOL_TLS: "TLS",
    service_pb2.Listener.PROTOCOL_UDP: "UDP",
    service_pb2.Listener.PROTOCOL_TCP_UDP: "TCP_UDP",
}
PROTOCOLS_OUT: dict[str, Any] = {
    "TCP": service_pb2.Listener.PROTOCOL_TCP,
    "TLS": service_pb2.Listener.PROTOCOL_TLS,
    "UDP": service_pb2.Listener.PROTOCOL_UDP,
    "TCP_UDP": service_pb2.Listener.PROTOCOL_TCP_UDP,
}
MODES_IN: dict[Any, str] = {
    service_pb2.AcceptancePolicy.MODE_UNSPECIFIED: "MANUAL",
    service_pb2.AcceptancePolicy.MODE_MANUAL: "MANUAL",
    service_pb2.AcceptancePolicy.MODE_AUTOMATIC: "AUTOMATIC",
}
MODES_OUT: dict[str, Any] = {
    "MANUAL": service_pb2.AcceptancePolicy.MODE_MANUAL,
    "AUTOMATIC": service_pb2.AcceptancePolicy.MODE_AUTOMATIC,
}


def _enum_in(table: dict[Any, str], value: int) -> str:
    # proto3 enums are open: an unknown number arrives intact and must fail validation.
    return table.get(value, f"UNKNOWN({value})")


def etag(uid: uuid.UUID, revision: int) -> str:
    digest = hashlib.sha256(f"{uid}:{revision}".encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode()


# At most microseconds (what datetime holds), `Z` or a numeric offset.
_RFC3339_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # naive values are UTC (protobuf's rule)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    # Integer arithmetic on the timedelta: Timestamp.FromDatetime goes through timetuple()
    # and calendar.timegm, several times slower, and this runs for every timestamp of a List.
    if value is None:
        return None
    delta = value - (_NAIVE_EPOCH if value.tzinfo is None else _EPOCH)
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def _iso_timestamp(value: str | None) -> timestamp_pb2.Timestamp | None:
    """An RFC 3339 time as the reconcilers write it (`…Z`); fromisoformat instead of
    Timestamp.FromJsonString, whose strptime dominated converting a List page."""
    if not value:
        return None
    match = _RFC3339_MICROS.fullmatch(value)
    if match is None:
        # Nanoseconds or another form: protobuf's own (slower, exact) parser.
        stamp = timestamp_pb2.Timestamp()
        stamp.FromJsonString(value)
        return stamp
    return timestamp(datetime.fromisoformat(value))


# ---- accounts -------------------------------------------------------------------------------


def account_spec(message: account_pb2.Account) -> specs.AccountSpec:
    return specs.AccountSpec(
        display_name=message.display_name,
        role_arn=message.role_arn,
        external_id=message.external_id,
        allowed_regions=list(message.allowed_regions),
        labels=dict(message.labels),
    )


class AccountIdentity(Protocol):
    """What names an Account and versions it: a stored row, or one being registered."""

    @property
    def name(self) -> str: ...
    @property
    def uid(self) -> uuid.UUID: ...
    @property
    def aws_account_id(self) -> str: ...
    @property
    def revision(self) -> int: ...


def account(row: models.Account) -> account_pb2.Account:
    return account_of(
        row,
        specs.account_from_json(row.spec),
        create_time=row.create_time,
        update_time=row.update_time,
    )


def account_of(
    identity: AccountIdentity,
    spec: specs.AccountSpec,
    *,
    create_time: datetime | None = None,
    update_time: datetime | None = None,
) -> account_pb2.Account:
    """The Account message of an identity and its spec (a registration has no times yet)."""
    return account_pb2.Account(
        name=identity.name,
        uid=str(identity.uid),
        aws_account_id=identity.aws_account_id,
        display_name=spec.display_name,
        role_arn=spec.role_arn,
        external_id=spec.external_id,
        allowed_regions=spec.allowed_regions,
        labels=spec.labels,
        create_time=timestamp(create_time),
        update_time=timestamp(update_time),
        etag=etag(identity.uid, identity.revision),
    )


# ---- services -------------------------------------------------------------------------------


def service_spec(message: service_pb2.Service) -> specs.ServiceSpec:
    lb = message.load_balancer
    kind = lb.WhichOneof("kind")
    load_balancer = specs.LoadBalancerSpec()
    if kind == "adopted":
        # An adopted block with no ARNs still means "adopted": keep a marker so validation
        # reports the empty list instead of "set exactly one".
        load_balancer.adopted_arns = list(lb.adopted.network_load_balancer_arns) or [""]
    elif kind == "managed":
        load_balancer.managed = specs.ManagedLoadBalancerSpec(
            subnet_ids=list(lb.managed.subnet_ids),
            listeners=[
                specs.ListenerSpec(
                    port=x.port,
                    protocol=_enum_in(PROTOCOLS_IN, x.protocol),
                    target_port=x.target_port,
                )
                for x in lb.managed.listeners
            ],
            targets=[specs.TargetSpec(id=t.id, port=t.port) for t in lb.managed.targets],
        )
    policy = message.acceptance_policy
    return specs.ServiceSpec(
        provider_account=message.provider_account,
        region=message.region,
        load_balancer=load_balancer,
        acceptance_policy=specs.AcceptancePolicySpec(
            mode=_enum_in(MODES_IN, policy.mode),
            accept_rules=[
                specs.AcceptRule(principal=r.principal, connection_limit=r.connection_limit)
                for r in policy.accept_rules
            ],
            reject_principals=list(policy.reject_principals),
            reevaluate_existing=policy.reevaluate_existing,
        ),
        allowed_principals=list(message.allowed_principals),
        private_dns_name=message.private_dns_name,
        supported_ip_address_types=[
            _enum_in(IP_TYPES_IN, t) or "UNSPECIFIED" for t in message.supported_ip_address_types
        ],
        supported_regions=list(message.supported_regions),
        display_name=message.display_name,
        labels=dict(message.labels),
    )


def _service_spec_message(spec: specs.ServiceSpec) -> service_pb2.Service:
    lb = service_pb2.LoadBalancer()
    if spec.load_balancer.managed is not None:
        managed = spec.load_balancer.managed
        lb.managed.CopyFrom(
            service_pb2.ManagedLoadBalancer(
                subnet_ids=managed.subnet_ids,
                listeners=[
                    service_pb2.Listener(
                        port=x.port, protocol=PROTOCOLS_OUT[x.protocol], target_port=x.target_port
                    )
                    for x in managed.listeners
                ],
                targets=[service_pb2.Target(id=t.id, port=t.port) for t in managed.targets],
            )
        )
    else:
        lb.adopted.network_load_balancer_arns.extend(spec.load_balancer.adopted_arns)
    policy = spec.acceptance_policy
    return service_pb2.Service(
        display_name=spec.display_name,
        provider_account=spec.provider_account,
        region=spec.region,
        load_balancer=lb,
        acceptance_policy=service_pb2.AcceptancePolicy(
            mode=MODES_OUT[policy.mode],
            accept_rules=[
                service_pb2.AcceptRule(principal=r.principal, connection_limit=r.connection_limit)
                for r in policy.accept_rules
            ],
            reject_principals=policy.reject_principals,
            reevaluate_existing=policy.reevaluate_existing,
        ),
        allowed_principals=spec.allowed_principals,
        private_dns_name=spec.private_dns_name,
        supported_ip_address_types=[IP_TYPES_OUT[t] for t in spec.supported_ip_address_types],
        supported_regions=spec.supported_regions,
        labels=spec.labels,
    )


def _conditions(status: dict[str, Any]) -> list[common_pb2.Condition]:
    return [
        common_pb2.Condition(
            type=c.get("type", ""),
            status=common_pb2.Condition.Status.Value(f"STATUS_{c.get('status', 'UNKNOWN')}"),
            reason=c.get("reason", ""),
            message=c.get("message", ""),
            observed_generation=c.get("observed_generation", 0),
            last_transition_time=_iso_timestamp(c.get("last_transition_time")),
        )
        for c in status.get("conditions", [])
    ]


def _aws_error(status: dict[str, Any]) -> common_pb2.AwsError | None:
    error = status.get("last_aws_error")
    if not error:
        return None
    return common_pb2.AwsError(
        code=error.get("code", ""),
        message=error.get("message", ""),
        action=error.get("action", ""),
        retryable=bool(error.get("retryable", False)),
        time=_iso_timestamp(error.get("time")),
    )


def service(row: models.Service) -> service_pb2.Service:
    message = _service_spec_message(specs.service_from_json(row.spec))
    status = row.status or {}
    dns = status.get("private_dns_verification") or {}
    counts = status.get("connection_counts") or {}
    message.MergeFrom(
        service_pb2.Service(
            name=row.name,
            uid=str(row.uid),
            state=service_pb2.Service.State.Value(f"STATE_{row.state}"),
            reconciling=row.reconciling,
            conditions=_conditions(status),
            generation=row.generation,
            observed_generation=row.observed_generation,
            service_id=status.get("service_id", ""),
            service_name=status.get("service_name", ""),
            network_load_balancer_arns=status.get("network_load_balancer_arns", []),
            base_endpoint_dns_names=status.get("base_endpoint_dns_names", []),
            private_dns_verification=service_pb2.PrivateDnsVerification(
                txt_record_name=dns.get("txt_record_name", ""),
                txt_record_value=dns.get("txt_record_value", ""),
                state=service_pb2.PrivateDnsVerification.State.Value(
                    f"STATE_{dns.get('state', 'UNSPECIFIED')}"
                ),
            )
            if dns
            else None,
            connection_counts=service_pb2.ConnectionCounts(**counts) if counts else None,
            availability_zones=status.get("availability_zones", []),
            last_aws_error=_aws_error(status),
            create_time=timestamp(row.create_time),
            update_time=timestamp(row.update_time),
            delete_time=timestamp(row.delete_time),
            etag=etag(row.uid, row.revision),
        )
    )
    return message


def _same_project(connection_name: str, service_name: str) -> str:
    """A consumer's Connection is named to the provider only within the same project: across
    projects the provider sees what AWS shows it (owner account, VPC, endpoint), not B's names."""
    project = "/".join(service_name.split("/")[:2]) + "/"
    return connection_name if connection_name.startswith(project) else ""


def service_connection(
    row: models.ServiceConnection, service_name: str
) -> service_pb2.ServiceConnection:
    decision = row.decision or {}
    return service_pb2.ServiceConnection(
        name=f"{service_name}/serviceConnections/{row.endpoint_id}",
        endpoint_id=row.endpoint_id,
        owner_account_id=row.owner_account_id,
        vpc_id=row.vpc_id,
        region=row.region,
        state=service_pb2.ServiceConnection.State.Value(f"STATE_{row.state}"),
        connection=_same_project(row.connection_name, service_name),
        request_message=row.request_message,
        decision=service_pb2.ServiceConnection.Decision(
            verdict=service_pb2.ServiceConnection.Decision.Verdict.Value(
                f"VERDICT_{decision.get('verdict', 'UNSPECIFIED')}"
            ),
            actor=decision.get("actor", ""),
            decide_time=_iso_timestamp(decision.get("time")),
            reason=decision.get("reason", ""),
            automatic=bool(decision.get("automatic", False)),
        )
        if decision
        else None,
        dns_entries=[
            common_pb2.DnsEntry(
                dns_name=d.get("dns_name", ""), hosted_zone_id=d.get("hosted_zone_id", "")
            )
            for d in (row.dns_entries or {}).get("entries", [])
        ],
        create_time=timestamp(row.create_time),
        observe_time=timestamp(row.observe_time),
    )


# ---- connections ----------------------------------------------------------------------------


def connection_spec(message: connection_pb2.Connection) -> specs.ConnectionSpec:
    return specs.ConnectionSpec(
        consumer_account=message.consumer_account,
        region=message.region,
        service=message.service,
        service_name=message.service_name,
        service_region=message.service_region,
        vpc_id=message.vpc_id,
        subnet_ids=list(message.subnet_ids),
        security_group_ids=list(message.security_group_ids),
        ip_address_type=_enum_in(IP_TYPES_IN, message.ip_address_type),
        private_dns_enabled=message.private_dns_enabled,
        policy_document=message.policy_document,
        request_message=message.request_message,
        display_name=message.display_name,
        labels=dict(message.labels),
        endpoint_type=_enum_in(ENDPOINT_TYPES_IN, message.endpoint_type),
        route_table_ids=list(message.route_table_ids),
    )


def connection(row: models.Connection) -> connection_pb2.Connection:
    spec = specs.connection_from_json(row.spec)
    status = row.status or {}
    message = connection_pb2.Connection(
        name=row.name,
        uid=str(row.uid),
        display_name=spec.display_name,
        consumer_account=spec.consumer_account,
        region=spec.region,
        service_region=spec.service_region,
        vpc_id=spec.vpc_id,
        subnet_ids=spec.subnet_ids,
        security_group_ids=spec.security_group_ids,
        ip_address_type=IP_TYPES_OUT.get(spec.ip_address_type, 0),
        private_dns_enabled=spec.private_dns_enabled,
        policy_document=spec.policy_document,
        request_message=spec.request_message,
        labels=spec.labels,
        endpoint_type=ENDPOINT_TYPES_OUT.get(spec.endpoint_type, 0),
        route_table_ids=spec.route_table_ids,
        state=connection_pb2.Connection.State.Value(f"STATE_{row.state}"),
        reconciling=row.reconciling,
        conditions=_conditions(status),
        generation=row.generation,
        observed_generation=row.observed_generation,
        endpoint_id=status.get("endpoint_id", ""),
        resolved_service_name=status.get("resolved_service_name", ""),
        dns_entries=[
            common_pb2.DnsEntry(
                dns_name=d.get("dns_name", ""), hosted_zone_id=d.get("hosted_zone_id", "")
            )
            for d in status.get("dns_entries", [])
        ],
        network_interfaces=[
            connection_pb2.NetworkInterface(
                network_interface_id=n.get("network_interface_id", ""),
                subnet_id=n.get("subnet_id", ""),
                availability_zone=n.get("availability_zone", ""),
                private_ip_address=n.get("private_ip_address", ""),
                ipv6_addresses=n.get("ipv6_addresses", []),
            )
            for n in status.get("network_interfaces", [])
        ],
        last_aws_error=_aws_error(status),
        create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time),
        delete_time=timestamp(row.delete_time),
        etag=etag(row.uid, row.revision),
    )
    if spec.service:
        message.service = spec.service
    else:
        message.service_name = spec.service_name
    return message


# ---- operations -----------------------------------------------------------------------------


def operation(row: models.Operation) -> operations_pb2.Operation:
    metadata = any_pb2.Any()
    metadata.Pack(
        common_pb2.OperationMetadata(
            target=row.target,
            verb=row.verb,
            create_time=timestamp(row.create_time),
            end_time=timestamp(row.end_time),
            progress_message=row.progress_message,
            cancel_requested=row.cancel_requested,
            api_version="v1",
            target_generation=row.target_generation,
            actor=row.actor,
        )
    )
    message = operations_pb2.Operation(
        name=f"operations/{row.id}", metadata=metadata, done=row.done
    )
    if row.done and row.error is not None:
        message.error.CopyFrom(status_from_json(row.error))
    elif row.done and row.response is not None:
        message.response.ParseFromString(row.response)
    return message


def status_to_json(status: status_pb2.Status) -> dict[str, Any]:
    return {
        "code": status.code,
        "message": status.message,
        "details": [base64.b64encode(d.SerializeToString()).decode() for d in status.details],
    }


def status_from_json(data: dict[str, Any]) -> status_pb2.Status:
    details = []
    for encoded in data.get("details", []):
        detail = any_pb2.Any()
        detail.ParseFromString(base64.b64decode(encoded))
        details.append(detail)
    return status_pb2.Status(
        code=int(data.get("code", 2)), message=str(data.get("message", "")), details=details
    )


def pack(message: Any) -> bytes:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed.SerializeToString()
