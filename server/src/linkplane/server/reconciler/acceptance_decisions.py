"""Acceptance decisions on a Service's endpoint connections.

People's decisions (AcceptServiceConnections / RejectServiceConnections, stored before the
pass) go first, then the acceptance policy's own; each verdict is sent to AWS, and recorded
with who, when and why in the inventory and the audit log. Also counts the connections by
state for the status.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence

from linkplane.server.aws import calls, endpoint_services
from linkplane.server.domain import acceptance, specs, states
from linkplane.server.reconciler import progress
from linkplane.server.reconciler.service_model import Decision, Outcome, log
from linkplane.server.storage import audit, decisions, inventory, leases, models, records
from linkplane.server.storage.database import Database, Session


async def decide(
    db: Database,
    lease: leases.Lease,
    ctx: calls.Context,
    spec: specs.ServiceSpec,
    service_id: str,
    connections: list[endpoint_services.EndpointConnection],
) -> bool:
    """Apply people's decisions, then the policy's; record each with who, when and why."""
    by_id = {c.endpoint_id: c for c in connections}
    async with db.transaction() as session:
        requested = await decisions.pending(session, lease.uid)
        plan = [
            Decision(d.endpoint_id, d.verdict, d.actor, d.reason, False, d.id) for d in requested
        ]
    if any(d.endpoint_id not in by_id for d in plan):
        # A person may decide on an endpoint the consumer created after this pass described
        # the service's connections (the API admits linkplane's own pending Connections
        # before the inventory shows them): look again, now that the decision is stored,
        # rather than refuse it as unknown.
        fresh = await endpoint_services.describe_connections(ctx, service_id)
        by_id = {c.endpoint_id: c for c in fresh}
    plan += policy_decisions(spec, by_id, {d.endpoint_id for d in plan})
    if not plan:
        return False
    outcomes: dict[str, Outcome] = {}
    for verdict, call in (
        ("ACCEPTED", endpoint_services.accept_connections),
        ("REJECTED", endpoint_services.reject_connections),
    ):
        ids = [
            d.endpoint_id
            for d in plan
            if d.verdict == verdict
            and d.endpoint_id in by_id
            and by_id[d.endpoint_id].state in states.DECIDABLE[verdict]
        ]
        if ids:
            _, refused = await call(ctx, service_id, ids)
            for item in refused:
                outcomes[item.resource_id] = Outcome(item.code, item.error.message)
    decided: list[str] = []
    async with db.transaction() as session:
        await leases.load(session, models.Service, lease)
        for decision in plan:
            outcome = refusal(decision, by_id, outcomes)
            if decision.request_row is not None:
                await decisions.mark_applied(
                    session, decision.request_row, outcome.to_json() if outcome else {}
                )
            if outcome is not None:
                continue
            await record_decision(session, lease.uid, decision)
            decided.append(decision.endpoint_id)
            log.info(
                "service.decision",
                service=str(lease.uid),
                endpoint=decision.endpoint_id,
                verdict=decision.verdict,
                actor=decision.actor,
                automatic=decision.automatic,
            )
        if decided:
            await leases.poke_decided_connections(session, lease.uid, decided)
    return True


def policy_decisions(
    spec: specs.ServiceSpec,
    by_id: Mapping[str, endpoint_services.EndpointConnection],
    decided_by_people: set[str],
) -> list[Decision]:
    """The acceptance policy's verdicts, oldest request first (limits count in that order)."""
    plan: list[Decision] = []
    live_by_owner: Counter[str] = Counter(
        c.owner for c in by_id.values() if c.state in {"PENDING", "AVAILABLE", "PARTIAL"}
    )
    for connection in sorted(by_id.values(), key=lambda c: str(c.create_time or "")):
        if connection.endpoint_id in decided_by_people:
            continue
        if connection.state == "PENDING_ACCEPTANCE":
            ruling = acceptance.decide(spec.acceptance_policy, connection.owner, live_by_owner)
            if ruling.verdict is not None:
                plan.append(
                    Decision(
                        connection.endpoint_id,
                        ruling.verdict,
                        ruling.rule,
                        "acceptance policy",
                        True,
                    )
                )
                if ruling.verdict == "ACCEPTED":
                    live_by_owner[connection.owner] += 1
        elif (
            spec.acceptance_policy.reevaluate_existing
            and connection.state in states.LIVE_ENDPOINT_STATES
            and not acceptance.still_allowed(spec, connection.owner)
        ):
            plan.append(
                Decision(
                    connection.endpoint_id,
                    "REJECTED",
                    "policy:reevaluate",
                    "no longer allowed",
                    True,
                )
            )
    return plan


def refusal(
    decision: Decision,
    by_id: Mapping[str, endpoint_services.EndpointConnection],
    outcomes: Mapping[str, Outcome],
) -> Outcome | None:
    """Why a decision was not applied, or None when it was."""
    connection = by_id.get(decision.endpoint_id)
    if connection is None:
        return Outcome(
            "EndpointNotFound", f"{decision.endpoint_id} is not connected to this service"
        )
    outcome = outcomes.get(decision.endpoint_id)
    if outcome is None and connection.state not in states.DECIDABLE[decision.verdict]:
        return Outcome("IncorrectState", f"{decision.endpoint_id} is {connection.state}")
    return outcome


def connection_counts(
    connections: Sequence[endpoint_services.EndpointConnection],
) -> dict[str, int]:
    """Connections by state; the buckets add up to the total."""
    counts = Counter(c.state for c in connections)
    buckets = {
        "pending_acceptance": counts["PENDING_ACCEPTANCE"],
        "pending": counts["PENDING"],
        "available": counts["AVAILABLE"],
        "rejected": counts["REJECTED"],
        "deleted": counts["DELETED"] + counts["DELETING"],
    }
    # Failed, expired, partial, and anything else AWS may report one day.
    buckets["failed"] = len(connections) - sum(buckets.values())
    buckets["total"] = len(connections)
    return buckets


async def record_decision(session: Session, service_uid: uuid.UUID, decision: Decision) -> None:
    recorded = {
        "verdict": decision.verdict,
        "actor": decision.actor,
        "reason": decision.reason,
        "automatic": decision.automatic,
        "time": progress.now_iso(),
    }
    await inventory.record_decision(session, service_uid, decision.endpoint_id, recorded)
    service = await records.find(session, models.Service, service_uid)
    await audit.record(
        session,
        audit.entry(
            actor=decision.actor,
            action=f"Connection{decision.verdict.title()}",
            resource=f"{service.name}/serviceConnections/{decision.endpoint_id}"
            if service
            else decision.endpoint_id,
            resource_uid=service_uid,
            details={"reason": decision.reason, "automatic": decision.automatic},
        ),
    )
