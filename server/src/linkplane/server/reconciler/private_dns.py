"""Private DNS verification of a Service's endpoint service.

linkplane asks AWS to look for the name's TXT record at once for a new spec generation or a
person's VerifyServicePrivateDns, then again at a bounded, growing interval while the name is
not verified; the status shows the record to create, and the open VerifyServicePrivateDns
operations are settled from the state AWS reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from linkplane.server.aws import calls, endpoint_services
from linkplane.server.domain import specs
from linkplane.server.protocol import converters
from linkplane.server.reconciler import progress
from linkplane.server.reconciler.service_model import DnsOutcome, DnsSchedule, Snapshot, Work
from linkplane.server.reconciler.workspace import Timing
from linkplane.server.storage import models, operations
from linkplane.server.storage.database import Session

VERIFY_DNS = "verify-dns"
"""The Operation verb of VerifyServicePrivateDns (api/provider.py starts it, this settles it)."""

DNS_RECHECK_BASE = 12.0
"""First automatic DNS re-check after this many transitional intervals (5 s → 1 min)."""

DNS_RECHECK_CAP = 12.0
"""Re-checks grow to at most this many resync intervals apart (300 s → 1 h)."""


async def verify(
    timing: Timing,
    ctx: calls.Context,
    spec: specs.ServiceSpec,
    observed: endpoint_services.EndpointServiceConfiguration,
    snap: Snapshot,
    work: Work,
    verify_requests: list[str],
) -> DnsOutcome:
    """Ask AWS to look for the TXT record: at once for a new generation or a person's
    request, then at a growing interval while it is not verified."""
    schedule = work.book.dns
    record = observed.private_dns
    if not spec.private_dns_name:
        work.book.dns = DnsSchedule()
        return DnsOutcome(False, None, [], verify_requests)
    if record is None:
        # AWS has not reported the name's record yet; requests wait for it.
        return DnsOutcome(False, None, [], [])
    new_requests = [r for r in verify_requests if r not in schedule.sent]
    fresh_generation = schedule.generation != snap.generation
    due = fresh_generation or work.now >= schedule.next_at
    asked = False
    if not record.verified and (due or new_requests):
        await endpoint_services.start_private_dns_verification(ctx, observed.service_id)
        asked = True
        schedule.attempts = 0 if fresh_generation or new_requests else schedule.attempts + 1
        schedule.generation = snap.generation
        schedule.next_at = work.now + recheck_delay(timing, schedule.attempts)
    schedule.sent = list(verify_requests)
    recheck_in = None if record.verified else schedule.next_at - work.now
    return DnsOutcome(asked, recheck_in, list(verify_requests), [])


def recheck_delay(timing: Timing, attempts: int) -> float:
    """Seconds from one automatic re-check to the next, after ``attempts`` re-checks."""
    base = DNS_RECHECK_BASE * timing.transitional_seconds
    cap = DNS_RECHECK_CAP * timing.resync_seconds
    return float(min(cap, base * 2 ** min(attempts, 30)))


def describe(
    spec: specs.ServiceSpec,
    observed: endpoint_services.EndpointServiceConfiguration,
    status: dict[str, Any],
    snap: Snapshot,
) -> None:
    """Show the TXT record to create and whether AWS has verified it."""
    record = observed.private_dns
    if not spec.private_dns_name or record is None:
        status.pop("private_dns_verification", None)
        return
    status["private_dns_verification"] = {
        "txt_record_name": record.name,
        "txt_record_value": record.value,
        "state": record.state,
    }
    progress.set_condition(
        status,
        "PrivateDnsVerified",
        record.verified,
        record.state.title().replace("_", ""),
        "the private DNS name is verified"
        if record.verified
        else f"create TXT {record.name} = {record.value} in the domain's DNS; linkplane "
        "asks AWS to verify it again periodically (or now: VerifyServicePrivateDns)",
        snap.generation,
    )


async def settle_verification(
    session: Session,
    row: models.Service,
    answered: Sequence[str],
    unanswerable: Sequence[str],
) -> None:
    """Finish VerifyServicePrivateDns operations that AWS has answered."""
    record = (row.status or {}).get("private_dns_verification") or {}
    state = record.get("state", "")
    for operation_id in unanswerable:
        await operations.finish(
            session,
            operation_id,
            error=progress.failure_status(
                "NO_PRIVATE_DNS_NAME",
                f"{row.name} has no private DNS name to verify",
                name=row.name,
            ),
        )
    for operation_id in answered:
        if state == "VERIFIED":
            await operations.finish(
                session, operation_id, response=converters.pack(converters.service(row))
            )
        elif state == "FAILED":
            name, value = record.get("txt_record_name", ""), record.get("txt_record_value", "")
            await operations.finish(
                session,
                operation_id,
                error=progress.failure_status(
                    "PRIVATE_DNS_NOT_VERIFIED",
                    f"AWS did not find TXT {name} = {value}; create it in the domain's DNS and "
                    "ask again (linkplane also re-checks periodically)",
                    name=row.name,
                    txt_record_name=str(name),
                    txt_record_value=str(value),
                ),
            )
