"""Desired state of each resource kind, as plain data.

The API layer converts protobuf messages into these; storage keeps them as JSON; the reconciler
reads them back. `to_json`/`from_json` are the storage format: only ever add fields with
defaults, so rows written by an older version still load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AccountSpec:
    """An AWS account linkplane acts in."""

    display_name: str = ""
    role_arn: str = ""
    external_id: str = ""
    allowed_regions: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ListenerSpec:
    port: int
    protocol: str = "TCP"
    target_port: int = 0


@dataclass
class TargetSpec:
    id: str
    port: int = 0


@dataclass
class ManagedLoadBalancerSpec:
    subnet_ids: list[str] = field(default_factory=list)
    listeners: list[ListenerSpec] = field(default_factory=list)
    targets: list[TargetSpec] = field(default_factory=list)


@dataclass
class LoadBalancerSpec:
    """Exactly one of `adopted_arns` (non-empty) or `managed` is set."""

    adopted_arns: list[str] = field(default_factory=list)
    managed: ManagedLoadBalancerSpec | None = None


@dataclass
class AcceptRule:
    principal: str
    connection_limit: int = 0


@dataclass
class AcceptancePolicySpec:
    mode: str = "MANUAL"  # MANUAL or AUTOMATIC
    accept_rules: list[AcceptRule] = field(default_factory=list)
    reject_principals: list[str] = field(default_factory=list)
    reevaluate_existing: bool = False


@dataclass
class ServiceSpec:
    """A published endpoint service."""

    provider_account: str = ""
    region: str = ""
    load_balancer: LoadBalancerSpec = field(default_factory=LoadBalancerSpec)
    acceptance_policy: AcceptancePolicySpec = field(default_factory=AcceptancePolicySpec)
    allowed_principals: list[str] = field(default_factory=list)
    private_dns_name: str = ""
    supported_ip_address_types: list[str] = field(default_factory=list)
    supported_regions: list[str] = field(default_factory=list)
    display_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ConnectionSpec:
    """A consumer's VPC endpoint: interface (ENIs in subnets) or gateway (route tables)."""

    consumer_account: str = ""
    region: str = ""
    service: str = ""
    service_name: str = ""
    service_region: str = ""
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    ip_address_type: str = ""  # "", ipv4, ipv6, dualstack
    private_dns_enabled: bool = False
    policy_document: str = ""
    request_message: str = ""
    display_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    endpoint_type: str = ""  # "" (interface), interface, gateway
    route_table_ids: list[str] = field(default_factory=list)

    @property
    def gateway(self) -> bool:
        """A gateway endpoint (route tables, no ENIs); anything else is an interface one."""
        return self.endpoint_type == "gateway"

    @property
    def cross_region(self) -> bool:
        """The service lives in another region than the consumer VPC."""
        return bool(self.service_region) and self.service_region != self.region


def to_json(spec: AccountSpec | ServiceSpec | ConnectionSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def account_from_json(data: dict[str, Any]) -> AccountSpec:
    return AccountSpec(**_known(AccountSpec, data))


def connection_from_json(data: dict[str, Any]) -> ConnectionSpec:
    return ConnectionSpec(**_known(ConnectionSpec, data))


def service_from_json(data: dict[str, Any]) -> ServiceSpec:
    values = _known(ServiceSpec, data)
    lb = values.get("load_balancer") or {}
    managed = lb.get("managed")
    values["load_balancer"] = LoadBalancerSpec(
        adopted_arns=list(lb.get("adopted_arns", [])),
        managed=ManagedLoadBalancerSpec(
            subnet_ids=list(managed.get("subnet_ids", [])),
            listeners=[ListenerSpec(**_known(ListenerSpec, x)) for x in managed["listeners"]],
            targets=[TargetSpec(**_known(TargetSpec, x)) for x in managed.get("targets", [])],
        )
        if managed
        else None,
    )
    policy = values.get("acceptance_policy") or {}
    values["acceptance_policy"] = AcceptancePolicySpec(
        mode=policy.get("mode", "MANUAL"),
        accept_rules=[AcceptRule(**_known(AcceptRule, r)) for r in policy.get("accept_rules", [])],
        reject_principals=list(policy.get("reject_principals", [])),
        reevaluate_existing=bool(policy.get("reevaluate_existing", False)),
    )
    return ServiceSpec(**values)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    # Ignore keys a newer version may have written, so a rollback can still read its rows.
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
