"""The Service reconciler: NLB → endpoint service → permissions → private DNS → connections.

Each pass reads the spec from Postgres and the truth from AWS, then takes every step that is
due, idempotently: objects are found by their `linkplane:uid` tag (or by their deterministic
ELBv2 name) before anything is created, and created with a deterministic ClientToken and the
tag in the same call. Teardown follows AWS's order: reject live connections, delete the
endpoint service, wait until it is gone, then delete the managed NLB and its target groups.

No mutation is re-issued blindly: every Modify (service configuration, permissions, the NLB's
IP address type) is planned as typed `Change`s and asked of a `stalls.MutationGuard` first, so
a change AWS accepts but never reflects stalls with a `Stalled` condition and backs off instead
of looping. Private DNS verification is asked again at a bounded, growing interval while the
name is not verified, and at once when a provider calls VerifyServicePrivateDns.

This module is the pass's skeleton: read, converge step by step, write back, tear down. Its
steps live beside it: the typed working data and the configuration plan in `service_model`,
the load-balancer steps in `service_load_balancers` (their ELBv2 calls in aws/loadbalancers.py),
private DNS verification in `private_dns`, and the connections' acceptance in
`acceptance_decisions`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from linkplane.server.aws import calls, endpoint_services, loadbalancers
from linkplane.server.domain import specs
from linkplane.server.reconciler import (
    acceptance_decisions,
    engine,
    failures,
    labels,
    private_dns,
    progress,
    service_load_balancers,
    stalls,
)
from linkplane.server.reconciler.service_model import (
    CONFIGURATION_FIELDS,
    PERMISSIONS_FIELD,
    TAGS_FIELD,
    Bookkeeping,
    Decision,
    Snapshot,
    Target,
    Work,
    log,
    plan_configuration,
)
from linkplane.server.reconciler.stalls import Change
from linkplane.server.reconciler.workspace import Workspace
from linkplane.server.storage import (
    changes,
    decisions,
    inventory,
    leases,
    models,
    operations,
    records,
)
from linkplane.server.storage.database import Session

KIND = "service"


# ---- the reconciler ---------------------------------------------------------------------------


class ServiceReconciler:
    kind = KIND
    model = models.Service

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def urgent(self) -> Any:
        # Decisions recorded by AcceptServiceConnections while this worker held the lease.
        return decisions.waiting()

    async def record_failure(
        self, lease: leases.Lease, error: failures.Failure, attempts: int
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            await failures.record(session, row, error, kind=KIND, settle=progress.settle_service)

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            spec = specs.service_from_json(row.spec)
            snapshot = Snapshot(
                uid=str(row.uid),
                name=row.name,
                generation=row.generation,
                deleting=row.delete_time is not None,
                force=row.force_delete,
            )
            status = dict(row.status or {})
            verify_requests = [
                op.id
                for op in await operations.open_for(session, row.uid)
                if op.verb == private_dns.VERIFY_DNS
            ]
        account = await self.ws.account(spec.provider_account)
        ctx = self.ws.context(account, spec.region, fence=self.ws.fence(models.Service, lease))
        if snapshot.deleting:
            return await self._teardown(lease, ctx, spec, snapshot)
        work = Work(status=status, book=Bookkeeping.load(status), now=time.time())
        return await self._converge(lease, ctx, spec, snapshot, work, verify_requests)

    # ---- converge --------------------------------------------------------------------------

    async def _converge(
        self,
        lease: leases.Lease,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        snap: Snapshot,
        work: Work,
        verify_requests: list[str],
    ) -> engine.Pass:
        status = work.status
        transitional = self.ws.timing.transitional_seconds
        target = Target.of(spec, ctx.region)
        lbs = await service_load_balancers.ensure(ctx, spec, snap, target, work)
        status["network_load_balancer_arns"] = lbs.arns
        progress.set_condition(
            status,
            "LoadBalancerReady",
            lbs.ready,
            "Active" if lbs.ready else "Provisioning",
            lbs.message,
            snap.generation,
        )
        if not lbs.ready:
            stalls.set_stalled_condition(status, work.stalled, snap.generation)
            work.book.save(status)
            await self._write(
                lease,
                status,
                state=None,
                converged=False,
                progress_message=lbs.message,
                stalled=work.stalled,
            )
            return engine.Pass(stalls.soonest_retry(work.stalled, transitional))

        observed = await endpoint_services.find_configuration(ctx, snap.uid)
        if observed is None:
            observed = await self._create_endpoint_service(ctx, spec, snap, target, lbs.arns)
        service_id = observed.service_id
        await self._apply_tags(ctx, spec, observed, work)
        changed = await self._apply_configuration(ctx, target, lbs.arns, observed, work)
        changed |= await self._apply_permissions(ctx, target, service_id, work)
        if changed:
            observed = await endpoint_services.find_configuration(ctx, snap.uid) or observed
        changed |= await service_load_balancers.settle_ip_address_type(
            ctx, target, lbs, observed, work
        )
        dns = await private_dns.verify(
            self.ws.timing, ctx, spec, observed, snap, work, verify_requests
        )
        if dns.asked:
            observed = await endpoint_services.find_configuration(ctx, snap.uid) or observed
        private_dns.describe(spec, observed, status, snap)

        status.update(
            service_id=service_id,
            service_name=observed.service_name,
            base_endpoint_dns_names=list(observed.base_endpoint_dns_names),
            availability_zones=list(observed.availability_zones),
        )
        connections = (
            await endpoint_services.describe_connections(ctx, service_id)
            if observed.available
            else []
        )
        if await acceptance_decisions.decide(self.ws.db, lease, ctx, spec, service_id, connections):
            connections = await endpoint_services.describe_connections(ctx, service_id)
        counts = acceptance_decisions.connection_counts(connections)
        status["connection_counts"] = counts
        status.pop("last_aws_error", None)
        stalls.set_stalled_condition(status, work.stalled, snap.generation)
        converged = observed.available and not changed and not work.stalled
        if converged:
            reason, message = "Available", "the endpoint service matches the spec"
        elif work.stalled:
            reason, message = "Stalled", "; ".join(s.message() for s in work.stalled)
        else:
            reason = "Converging"
            message = f"endpoint service is {observed.state or 'being created'}"
        progress.set_condition(status, "Ready", converged, reason, message, snap.generation)
        work.book.save(status)
        await self._write(
            lease,
            status,
            state="ACTIVE" if converged else None,
            converged=converged,
            progress_message="active" if converged else message,
            service_id=service_id,
            service_name=observed.service_name,
            connections=connections,
            dns_answered=dns.answered,
            dns_unanswerable=dns.unanswerable,
            stalled=work.stalled,
        )
        if not converged or counts["pending_acceptance"] + counts["pending"]:
            delay = transitional
        else:
            delay = self.ws.timing.resync_seconds
        if work.stalled and observed.available and not changed:
            # Only stalled changes are left: look again when the guard lets one go, not at
            # the transitional pace (each pass costs Describe calls for nothing).
            retry = min(s.retry_after for s in work.stalled)
            delay = max(transitional, min(self.ws.timing.resync_seconds, retry))
        if dns.answered and (dns.recheck_in is not None):
            # A person waits on VerifyServicePrivateDns: follow AWS's answer closely.
            delay = min(delay, transitional)
        if dns.recheck_in is not None:
            delay = min(delay, max(dns.recheck_in, transitional))
        return engine.Pass(delay)

    async def _create_endpoint_service(
        self,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        snap: Snapshot,
        target: Target,
        arns: list[str],
    ) -> endpoint_services.EndpointServiceConfiguration:
        extra: dict[str, Any] = {}
        if target.private_dns_name:
            extra["PrivateDnsName"] = target.private_dns_name
        if spec.supported_ip_address_types:
            extra["SupportedIpAddressTypes"] = sorted(target.supported_ip_address_types)
        if target.supported_regions:
            extra["SupportedRegions"] = sorted(target.supported_regions)
        created = await endpoint_services.create_endpoint_service(
            ctx,
            uid=snap.uid,
            generation=snap.generation,
            name=snap.name,
            network_load_balancer_arns=arns,
            acceptance_required=target.acceptance_required,
            labels=spec.labels,
            **extra,
        )
        return endpoint_services.EndpointServiceConfiguration.from_aws(created, ctx.region)

    async def _apply_tags(
        self,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        observed: endpoint_services.EndpointServiceConfiguration,
        work: Work,
    ) -> None:
        """Labels follow onto the endpoint service's tags, behind the guard like any change
        (tags are not part of the service's readiness: the next pass checks them)."""
        current = labels.user_tags(observed.raw)
        if current == spec.labels:
            work.book.guard.clear(TAGS_FIELD)
            return
        if work.allowed("CreateTags", Change(TAGS_FIELD, dict(spec.labels), current, {})):
            await labels.sync_ec2_tags(ctx, observed.service_id, observed.raw, spec.labels)

    async def _apply_configuration(
        self,
        ctx: calls.Context,
        target: Target,
        arns: Sequence[str],
        observed: endpoint_services.EndpointServiceConfiguration,
        work: Work,
    ) -> bool:
        planned = plan_configuration(target, arns, observed)
        pending = {c.field for c in planned}
        for name in CONFIGURATION_FIELDS:
            if name not in pending:
                work.book.guard.clear(name)
        params: dict[str, Any] = {}
        for change in planned:
            if work.allowed("ModifyVpcEndpointServiceConfiguration", change):
                params.update(change.params)
        if not params:
            return False
        await endpoint_services.modify_configuration(ctx, observed.service_id, **params)
        return True

    async def _apply_permissions(
        self, ctx: calls.Context, target: Target, service_id: str, work: Work
    ) -> bool:
        current = await endpoint_services.allowed_principals(ctx, service_id)
        wanted = target.allowed_principals
        if current == wanted:
            work.book.guard.clear(PERMISSIONS_FIELD)
            return False
        add, remove = sorted(wanted - current), sorted(current - wanted)
        change = Change(
            PERMISSIONS_FIELD,
            sorted(wanted),
            sorted(current),
            {"AddAllowedPrincipals": add, "RemoveAllowedPrincipals": remove},
        )
        if not work.allowed("ModifyVpcEndpointServicePermissions", change):
            return False
        await endpoint_services.modify_permissions(ctx, service_id, add=add, remove=remove)
        return True

    async def _write(
        self,
        lease: leases.Lease,
        status: dict[str, Any],
        *,
        state: str | None,
        converged: bool,
        progress_message: str,
        service_id: str | None = None,
        service_name: str | None = None,
        connections: list[endpoint_services.EndpointConnection] | None = None,
        dns_answered: Sequence[str] = (),
        dns_unanswerable: Sequence[str] = (),
        stalled: Sequence[stalls.Stalled] = (),
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            before = (row.state, row.status, row.reconciling, row.observed_generation)
            row.status = status
            if state is not None:
                row.state = state
            elif row.state in {"ACTIVE", "FAILED"}:
                row.state = "UPDATING"
            if converged:
                row.observed_generation = lease.generation
            row.reconciling = not converged or row.generation != lease.generation
            if service_id:
                row.service_id = service_id
                row.service_name = service_name
            if connections is not None:
                await inventory.store_observed(session, row, connections)
            if before != (row.state, row.status, row.reconciling, row.observed_generation):
                row.revision += 1
                records.mark_updated(row)
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, progress_message)
            await records.write_back(session, row)
            await progress.settle_service(session, row)
            await private_dns.settle_verification(session, row, dns_answered, dns_unanswerable)
            if stalled:
                await _fail_stalled(session, row, stalled)

    # ---- teardown --------------------------------------------------------------------------

    async def _teardown(
        self, lease: leases.Lease, ctx: calls.Context, spec: specs.ServiceSpec, snap: Snapshot
    ) -> engine.Pass:
        transitional = self.ws.timing.transitional_seconds
        observed = await endpoint_services.find_configuration(ctx, snap.uid)
        if observed is not None:
            service_id = observed.service_id
            connections = await endpoint_services.describe_endpoint_connections(ctx, service_id)
            live = endpoint_services.live_connection_ids(connections)
            if live and not snap.force:
                await self._note(
                    lease,
                    "DeleteBlocked",
                    f"{len(live)} live connections; delete with force to reject them",
                )
                return engine.Pass(transitional)
            if live:
                await endpoint_services.reject_connections(ctx, service_id, live)
                async with self.ws.db.transaction() as session:
                    await leases.load(session, models.Service, lease)
                    for endpoint_id in live:
                        await acceptance_decisions.record_decision(
                            session,
                            lease.uid,
                            Decision(
                                endpoint_id,
                                "REJECTED",
                                "policy:force-delete",
                                "service deleted with force",
                                True,
                            ),
                        )
            # Raises ExistingVpcEndpointConnections (retryable) while rejections settle.
            await endpoint_services.delete_endpoint_service(ctx, service_id)
            if await endpoint_services.find_endpoint_service_by_uid(ctx, snap.uid) is not None:
                await self._note(lease, "Deleting", "waiting for the endpoint service to go")
                return engine.Pass(transitional)
        managed = spec.load_balancer.managed
        if managed is not None and not await loadbalancers.delete_managed_load_balancer(
            ctx, uid=snap.uid, spec=managed
        ):
            await self._note(lease, "Deleting", "waiting for the NLB to go")
            return engine.Pass(transitional)
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            await progress.finish_deletion(session, row, KIND)
        log.info("service.deleted", service=snap.name)
        return engine.Pass(0)

    async def _note(self, lease: leases.Lease, reason: str, message: str) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            status = dict(row.status or {})
            progress.set_condition(status, "Ready", False, reason, message, row.generation)
            if status != row.status:
                row.status = status
                row.revision += 1
                records.mark_updated(row)
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, message)


# ---- helpers -----------------------------------------------------------------------------------


async def _fail_stalled(
    session: Session, row: models.Service, stalled: Sequence[stalls.Stalled]
) -> None:
    """Publish/update operations fail when a change is stalled: the reconciler keeps trying
    with backoff, but the caller learns now rather than hours later (as for Connections)."""
    message = "; ".join(s.message() for s in stalled)
    for operation in await operations.open_for(session, row.uid):
        if operation.verb in {"publish", "update"}:
            await operations.finish(
                session,
                operation.id,
                error=progress.failure_status(
                    "STALLED", message, state=row.state, fields=",".join(s.field for s in stalled)
                ),
            )
