"""Lifecycle states of linkplane resources and of AWS endpoints, and how they map.

AWS spells endpoint states in varying case (`pendingAcceptance`, `PendingAcceptance`,
`available`); `normalise_endpoint_state` turns any spelling into one canonical name, and an
unknown one into FAILED-like `UNKNOWN` handling by the caller rather than a crash.
"""

from __future__ import annotations

import re

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
# Connections that keep a service from being deleted (AWS refuses with
# ExistingVpcEndpointConnections while any is Available or PendingAcceptance; Pending will be
# Available shortly, so it counts too).
LIVE_ENDPOINT_STATES = frozenset({"PENDING_ACCEPTANCE", "PENDING", "AVAILABLE", "PARTIAL"})
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


def normalise_endpoint_state(value: str) -> str:
    """`pendingAcceptance` / `PendingAcceptance` / `pending-acceptance` → `PENDING_ACCEPTANCE`."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", value.strip()).replace("-", "_").upper()
    return snake if snake in ENDPOINT_STATES else "FAILED"


def service_state_on_update(current: str) -> str:
    """A spec change moves a settled service to UPDATING; one still creating stays CREATING."""
    return "CREATING" if current == "CREATING" else "UPDATING"
