"""Lifecycle states of linkplane resources and of AWS endpoints, and how they map.

AWS spells endpoint states in varying case (`pendingAcceptance`, `PendingAcceptance`,
`available`); `normalise_endpoint_state` turns any spelling into the one canonical name
linkplane uses (`PENDING_ACCEPTANCE`), and an unknown one into FAILED rather than a crash. The
named sets below say which endpoint states count for what.
"""

from __future__ import annotations

SERVICE_STATES = frozenset({"CREATING", "ACTIVE", "UPDATING", "DELETING", "FAILED"})
CONNECTION_STATES = frozenset(
    {
        "CREATING",
        "PENDING_ACCEPTANCE",
        "PROVISIONING",
        "AVAILABLE",
        "REJECTED",
        "FAILED",
        "DELETING",
        "EXPIRED",
    }
)
ENDPOINT_STATES = frozenset(
    {
        "PENDING_ACCEPTANCE",
        "PENDING",
        "AVAILABLE",
        "DELETING",
        "DELETED",
        "REJECTED",
        "FAILED",
        "EXPIRED",
        "PARTIAL",
    }
)
# Connections that block deleting their endpoint service (AWS refuses with
# ExistingVpcEndpointConnections while any is Available or PendingAcceptance; Pending will be
# Available shortly, so it counts too): a service's teardown rejects these first.
DELETE_BLOCKING_ENDPOINT_STATES = frozenset({"PENDING_ACCEPTANCE", "PENDING", "AVAILABLE"})
# Connections that keep a service from being deleted without force, and that a re-evaluated
# acceptance policy may reject: the blocking ones and PARTIAL. A PARTIAL endpoint carries
# traffic in some of its zones, so deleting its service breaks a consumer and needs `force`;
# but AWS does not refuse the deletion for it, so a forced teardown rejects only the blocking
# ones first (rejecting more would be a call AWS does not need, and one more to fail).
LIVE_ENDPOINT_STATES = DELETE_BLOCKING_ENDPOINT_STATES | {"PARTIAL"}
# Endpoints going or gone: never adopted, never deleted again, not garbage.
GONE_ENDPOINT_STATES = frozenset({"DELETING", "DELETED"})
# Endpoints that no longer take a slot of their VPC's endpoint quota (L-29B6F2EB); every other
# state does, an unrecognised one included (see `counts_against_quota`).
OFF_QUOTA_ENDPOINT_STATES = frozenset({"DELETING", "DELETED", "REJECTED", "FAILED", "EXPIRED"})
# Which endpoint states a person may accept or reject from.
DECIDABLE = {
    "ACCEPTED": frozenset({"PENDING_ACCEPTANCE"}),
    "REJECTED": frozenset({"PENDING_ACCEPTANCE", "PENDING", "AVAILABLE", "PARTIAL"}),
}
# Endpoint state → the Connection state a consumer sees.
CONNECTION_STATE_OF_ENDPOINT = {
    "PENDING_ACCEPTANCE": "PENDING_ACCEPTANCE",
    "PENDING": "PROVISIONING",
    "AVAILABLE": "AVAILABLE",
    "PARTIAL": "PROVISIONING",
    "REJECTED": "REJECTED",
    "FAILED": "FAILED",
    "EXPIRED": "EXPIRED",
    "DELETING": "DELETING",
    "DELETED": "DELETING",
}

# The Connection states that name one endpoint state, for reading an endpoint's state off the
# consumer's side when the provider's inventory has not seen it yet.
ENDPOINT_STATE_OF_CONNECTION = {
    connection: endpoint
    for endpoint, connection in CONNECTION_STATE_OF_ENDPOINT.items()
    if list(CONNECTION_STATE_OF_ENDPOINT.values()).count(connection) == 1
}


_ENDPOINT_STATE_BY_KEY = {state.replace("_", "").lower(): state for state in ENDPOINT_STATES}


def _canonical_endpoint_state(value: str | None) -> str | None:
    """The canonical name of a state in any of AWS's spellings; None if it is not one."""
    key = (value or "").strip().lower().replace("-", "").replace("_", "")
    return _ENDPOINT_STATE_BY_KEY.get(key)


def normalise_endpoint_state(value: str | None) -> str:
    """`pendingAcceptance` / `PendingAcceptance` / `pending-acceptance` → `PENDING_ACCEPTANCE`;
    an unknown or missing state → `FAILED`."""
    return _canonical_endpoint_state(value) or "FAILED"


def counts_against_quota(value: str | None) -> bool:
    """Whether an endpoint in state `value` (any spelling) takes a slot of its VPC's quota.

    An unrecognised or missing state counts: it is not known to have freed its slot.
    """
    return _canonical_endpoint_state(value) not in OFF_QUOTA_ENDPOINT_STATES


def service_state_on_update(current: str) -> str:
    """A spec change moves a settled service to UPDATING; one still creating stays CREATING."""
    return "CREATING" if current == "CREATING" else "UPDATING"
