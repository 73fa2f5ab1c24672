"""The acceptance policy: who is accepted automatically, who is rejected, who waits.

AWS's own switch is all-or-nothing per service (AcceptanceRequired). linkplane keeps it on
whenever rules exist and decides per consumer here, like GCP Private Service Connect's
accept/reject lists with per-consumer connection limits.

AWS reports only the endpoint owner's account id, so a rule principal matches by account: a
12-digit id or any IAM ARN of that account (`…:root`, `…:role/x`). Organization and OU ARNs
cannot be resolved from an endpoint without the Organizations API, so they never match
automatically: such consumers wait for a person.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from linkplane.server.domain.specs import AcceptancePolicySpec, ServiceSpec

_IAM_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}):")


def account_of(principal: str) -> str | None:
    """The account a principal belongs to, or None (`*`, organizations, OUs)."""
    if re.fullmatch(r"[0-9]{12}", principal):
        return principal
    match = _IAM_ACCOUNT.match(principal)
    return match.group(1) if match else None


def matches(principal: str, owner_account_id: str) -> bool:
    return account_of(principal) == owner_account_id


@dataclass(frozen=True)
class Verdict:
    """ACCEPTED, REJECTED or None (leave it to a person), and which rule decided."""

    verdict: str | None
    rule: str


def acceptance_required(spec: ServiceSpec) -> bool:
    """What AWS's AcceptanceRequired must be: off only when everyone is accepted anyway."""
    policy = spec.acceptance_policy
    return policy.mode == "MANUAL" or bool(policy.accept_rules or policy.reject_principals)


def decide(
    policy: AcceptancePolicySpec, owner_account_id: str, live_by_owner: Mapping[str, int]
) -> Verdict:
    """The verdict for one pending connection request from `owner_account_id`.

    `live_by_owner` counts each owner's connections that are already accepted (pending or
    available), so a connection limit holds across reconciles.
    """
    for principal in policy.reject_principals:
        if matches(principal, owner_account_id):
            return Verdict("REJECTED", f"policy:reject:{principal}")
    for rule in policy.accept_rules:
        if matches(rule.principal, owner_account_id):
            used = live_by_owner.get(owner_account_id, 0)
            if rule.connection_limit and used >= rule.connection_limit:
                return Verdict(None, f"policy:limit:{rule.principal}:{rule.connection_limit}")
            return Verdict("ACCEPTED", f"policy:accept:{rule.principal}")
    if policy.mode == "AUTOMATIC":
        return Verdict("ACCEPTED", "policy:automatic")
    return Verdict(None, "policy:manual")


def still_allowed(spec: ServiceSpec, owner_account_id: str) -> bool:
    """For re-evaluation: may an existing connection from this owner stay?"""
    policy = spec.acceptance_policy
    if any(matches(p, owner_account_id) for p in policy.reject_principals):
        return False
    allowed = spec.allowed_principals
    if not allowed or "*" in allowed:
        return True
    return any(matches(p, owner_account_id) for p in allowed) or any(
        account_of(p) is None for p in allowed
    )


def permission_principal(principal: str) -> str:
    """The ARN AWS's ModifyVpcEndpointServicePermissions wants for an allowed principal."""
    if re.fullmatch(r"[0-9]{12}", principal):
        return f"arn:aws:iam::{principal}:root"
    return principal
