"""The Connection reconciler: pre-flight checks, the VPC endpoint, and its lifecycle.

A Connection is an *interface* endpoint (ENIs in subnets; any endpoint service: a linkplane
Service, another provider's service name, an AWS service such as SQS; cross-region) or a
*gateway* endpoint (routes in route tables; S3 and DynamoDB in the VPC's region).

A pass resolves the `Target`, finds the endpoint by its `linkplane:uid` tag (from the account's
shared snapshot, `endpoint_snapshots`) before it is ever created, and creates it only after
pre-flight (`connection_preflight`) found nothing that would fail later inside AWS. If the
endpoint vanishes out of band, the next pass notices, says so in a condition, and creates a new
one under a new incarnation number (so the ClientToken changes and AWS does not hand back the
deleted one). Once the endpoint is available the spec is applied by diff
(`connection_plans.converge`); every pass reports what AWS shows.

Its working data is typed (`connection_model`): the `Target` of this pass, the observed
`aws_endpoints.Endpoint`, and the private `Bookkeeping` kept in the status JSON.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import structlog

from linkplane.server.aws import calls, tags
from linkplane.server.aws import endpoints as aws_endpoints
from linkplane.server.aws import errors as aws_errors
from linkplane.server.domain import acceptance, specs, states
from linkplane.server.reconciler import connection_plans as plans
from linkplane.server.reconciler import engine, failures, labels, progress, stalls
from linkplane.server.reconciler.connection_model import Bookkeeping, LinkplaneService, Target
from linkplane.server.reconciler.connection_preflight import (
    VISIBILITY_GRACE_ATTEMPTS,
    Preflight,
    grace_delay,
)
from linkplane.server.reconciler.endpoint_snapshots import EndpointSnapshots
from linkplane.server.reconciler.workspace import Workspace
from linkplane.server.storage import changes, leases, models, records

log = structlog.get_logger("linkplane.reconciler.connections")
KIND = "connection"
FIRST_CLAIM = 1
"""The fencing token of a row's first lease (rows start at 0; every claim adds one)."""


class ConnectionReconciler:
    kind = KIND
    model = models.Connection

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.snapshots = EndpointSnapshots(
            ttl=workspace.timing.transitional_seconds, on_changed=self._endpoints_changed
        )
        self.preflight = Preflight(self.snapshots, workspace.timing)

    def urgent(self) -> Any:
        return None

    async def _endpoints_changed(self, uids: list[str]) -> None:
        """A snapshot saw these Connections' endpoints change state (failed, rejected, deleted
        by hand): they look now, not at their next resync (minutes, for a settled one)."""
        ours = []
        for uid in uids:
            try:
                ours.append(uuid.UUID(uid))
            except ValueError:  # a `linkplane:uid` tag someone else wrote
                continue
        if ours:
            async with self.ws.db.transaction() as session:
                await leases.poke_connections(session, ours)

    async def record_failure(
        self, lease: leases.Lease, error: failures.Failure, attempts: int
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            await failures.record(session, row, error, kind=KIND, settle=progress.settle_connection)

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        began = time.monotonic()
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            spec = specs.connection_from_json(row.spec)
            status = dict(row.status or {})
            deleting = row.delete_time is not None
            name, uid, attempts = row.name, str(row.uid), row.attempts
            linkplane: LinkplaneService | None = None
            missing_service = False
            if spec.service:
                service_row = await records.get(session, models.Service, spec.service)
                if service_row is None:
                    missing_service = True
                else:
                    service_status = dict(service_row.status or {})
                    linkplane = LinkplaneService(
                        name=service_row.name,
                        service_name=service_row.service_name or "",
                        deleted=service_row.delete_time is not None,
                        spec=specs.service_from_json(service_row.spec),
                        private_dns_state=str(
                            (service_status.get("private_dns_verification") or {}).get("state")
                            or ""
                        ),
                    )
        account = await self.ws.account(spec.consumer_account)
        ctx = self.ws.context(account, spec.region, fence=self.ws.fence(models.Connection, lease))
        book = Bookkeeping.load(status)
        if deleting:
            return await self._delete(lease, ctx, uid)

        if missing_service or (linkplane is not None and linkplane.deleted):
            # The provider deleted the service (with force, it rejected this connection
            # first): report what AWS says about the endpoint (REJECTED), not an error.
            # Only with no endpoint left is there nothing to observe.
            found = await aws_endpoints.find_endpoint_by_uid(ctx, uid)
            if found is None:
                raise failures.PermanentError(
                    "TargetServiceGone", f"service {spec.service} no longer exists"
                )
            progress.set_condition(
                status,
                "TargetService",
                False,
                "TargetServiceGone",
                f"service {spec.service} is deleted or being deleted",
                lease.generation,
            )
            orphan = Target(
                service_name=str(status.get("resolved_service_name") or ""),
                region=spec.service_region or spec.region,
                cross_region=spec.cross_region,
                linkplane=None,
            )
            endpoint = aws_endpoints.Endpoint.parse(found)
            return await self._observe(lease, ctx, spec, status, book, endpoint, orphan, None)
        if linkplane is not None and not linkplane.service_name:
            await self._write(
                lease,
                status,
                "CREATING",
                converged=False,
                message=f"waiting for {spec.service} to be published",
            )
            return engine.Pass(self.ws.timing.transitional_seconds)
        # A linkplane Service lives in its own region: a connection that does not name the
        # service region still reaches it there (cross-region when that is not the VPC's).
        service_region = spec.service_region or (
            linkplane.spec.region if linkplane is not None and linkplane.spec.region else ""
        )
        target = Target(
            service_name=linkplane.service_name if linkplane is not None else spec.service_name,
            region=service_region or spec.region,
            cross_region=bool(service_region) and service_region != spec.region,
            linkplane=linkplane,
        )
        status["resolved_service_name"] = target.service_name

        found = await self._find(
            ctx,
            uid,
            book,
            attempts,
            began=began,
            sleeps_when_pending=linkplane is not None,
            first_claim=lease.token == FIRST_CLAIM,
        )
        if found is None:
            if book.endpoint_id:
                # It existed and is gone, and nobody here deleted it: drift. Record it and move
                # to a new incarnation before creating, so a crash here cannot reuse the token
                # of the endpoint that was deleted.
                book.incarnation += 1
                progress.set_condition(
                    status,
                    "Drift",
                    True,
                    "EndpointDeletedOutOfBand",
                    f"endpoint {book.endpoint_id} was deleted outside linkplane; recreating",
                    lease.generation,
                )
                log.warning("connection.drift", connection=name, endpoint=book.endpoint_id)
                book.endpoint_id = ""
                book.save(status)
                await self._write(
                    lease,
                    status,
                    "CREATING",
                    converged=False,
                    message="recreating the endpoint deleted out of band",
                )
            detail = await self.preflight.check(ctx, spec, target, attempts)
            created = await plans.create_endpoint(
                ctx, spec, target, detail, uid, name, book.token_generation(lease.generation)
            )
            log.info("connection.created", connection=name, endpoint=created.endpoint_id)
            if not spec.gateway:
                self.snapshots.created(ctx, spec.vpc_id, created.endpoint_id)
            # Store the endpoint id before anyone can decide on it: the Service pokes its
            # connections by endpoint id when it accepts, and a poke that finds no row is lost.
            # The next pass reads the endpoint directly, after this commit, so an accept that
            # happened before it is seen then.
            book.endpoint_id = created.endpoint_id
            book.fresh_read = True
            book.save(status)
            status.pop("last_aws_error", None)
            await self._write(
                lease,
                status,
                "CREATING",
                converged=False,
                endpoint_id=created.endpoint_id,
                message=f"created endpoint {created.endpoint_id}; reading its state",
            )
            await self._poke(spec.service)
            return engine.Pass(0)
        endpoint = aws_endpoints.Endpoint.parse(found)
        status.pop("last_aws_error", None)
        if await labels.sync_ec2_tags(ctx, endpoint.endpoint_id, endpoint.raw, spec.labels):
            log.info("connection.tags_synced", connection=name)
        return await self._observe(lease, ctx, spec, status, book, endpoint, target, attempts)

    async def _find(
        self,
        ctx: calls.Context,
        uid: str,
        book: Bookkeeping,
        attempts: int,
        *,
        began: float,
        sleeps_when_pending: bool,
        first_claim: bool,
    ) -> dict[str, Any] | None:
        """This connection's endpoint: direct read after a change, else the snapshot.

        A pass that finds its endpoint pending acceptance and `sleeps_when_pending` (a linkplane
        Service pokes it with the verdict) confirms it with a direct read when the snapshot was
        asked for before the pass began: the poke that woke it may have followed an accept that
        the snapshot does not show, and the pass would then sleep a full resync (a lost wake-up,
        issue 8). A direct read costs one endpoint; refreshing the snapshot for every such pass
        would cost all of them, back to back.

        A snapshot that does not show the endpoint is confirmed by a search by tag, unless this
        is the connection's `first_claim`: no earlier pass (of this process or one that crashed)
        can have created an endpoint for it, so there is nothing the snapshot could have missed.
        A crash after the create makes the next pass a later claim, which searches and adopts.
        """
        if book.fresh_read and book.endpoint_id:
            # Right after a create, NotFound means "not visible yet" (eventual consistency),
            # not drift: concluding drift would create a second endpoint. A few retries, then
            # it is believed (an endpoint deleted out of band at once).
            try:
                found = await aws_endpoints.describe_endpoint(
                    ctx, book.endpoint_id, recently_created=attempts < VISIBILITY_GRACE_ATTEMPTS
                )
            except aws_errors.AwsError as error:
                if aws_errors.is_not_found(error) and error.retryable:
                    error.requeue_after = grace_delay(attempts, self.ws.timing.transitional_seconds)
                raise
            book.fresh_read = False
            if (
                found is not None
                and tags.tag_value(found, tags.UID_KEY) == uid
                and states.normalise_endpoint_state(found.get("State"))
                not in states.GONE_ENDPOINT_STATES
            ):
                return found
        sighting = await self.snapshots.find(ctx, uid)
        found = sighting.endpoint
        if (
            found is not None
            and sleeps_when_pending
            and sighting.asked < began
            and states.normalise_endpoint_state(found.get("State")) == "PENDING_ACCEPTANCE"
        ):
            found = await aws_endpoints.describe_endpoint(ctx, str(found["VpcEndpointId"]))
        if found is None and not first_claim:
            # A snapshot can predate an endpoint created a moment ago: ask AWS directly
            # before concluding it is missing (and creating, or reporting drift).
            found = await aws_endpoints.find_endpoint_by_uid(ctx, uid)
        return found

    # ---- observe and converge ---------------------------------------------------------------

    async def _observe(
        self,
        lease: leases.Lease,
        ctx: calls.Context,
        spec: specs.ConnectionSpec,
        status: dict[str, Any],
        book: Bookkeeping,
        endpoint: aws_endpoints.Endpoint,
        target: Target,
        attempts: int | None,
    ) -> engine.Pass:
        """Report the endpoint; once available, apply the spec by diff (guarded).

        ``attempts`` is None when the target is gone: then nothing is changed, only reported.
        """
        aws_state = endpoint.state
        state = states.CONNECTION_STATE_OF_ENDPOINT.get(aws_state, "FAILED")
        applied = plans.Applied(0, [])
        if aws_state == "AVAILABLE" and attempts is not None:
            applied = await plans.converge(
                ctx, self.preflight, spec, status, endpoint, target, attempts, lease.generation
            )
            if applied.sent:
                book.fresh_read = True
        book.endpoint_id = endpoint.endpoint_id
        book.save(status)
        status["dns_entries"] = [dataclasses.asdict(d) for d in endpoint.dns_entries]
        status["network_interfaces"] = [
            dataclasses.asdict(n) for n in await plans.network_interfaces(ctx, endpoint, status)
        ]
        if endpoint.last_error is not None:
            status["last_aws_error"] = {
                "code": endpoint.last_error.code,
                "message": endpoint.last_error.message,
                "action": "CreateVpcEndpoint",
                "retryable": False,
                "time": progress.now_iso(),
            }
        accepted = aws_state in {"PENDING", "AVAILABLE", "PARTIAL"}
        progress.set_condition(
            status,
            "Accepted",
            accepted if aws_state != "PENDING_ACCEPTANCE" else None,
            {"PENDING_ACCEPTANCE": "AwaitingProvider", "REJECTED": "Rejected"}.get(
                aws_state, "Accepted" if accepted else aws_state.title()
            ),
            f"the endpoint is {aws_state.lower()}",
            lease.generation,
        )
        changing = applied.sent > 0
        ready = aws_state == "AVAILABLE" and not changing and not applied.stalled
        if ready:
            reason, message = "Available", "the endpoint carries traffic"
        elif aws_state == "AVAILABLE" and applied.stalled:
            reason, message = "Stalled", "AWS does not reflect a change; see the Stalled condition"
        elif aws_state == "AVAILABLE":
            reason, message = "Updating", "the endpoint is being modified"
        else:
            reason = aws_state.title().replace("_", "")
            message = f"the endpoint is {aws_state.lower()}"
        progress.set_condition(status, "Ready", ready, reason, message, lease.generation)
        linkplane = target.linkplane
        # PENDING_ACCEPTANCE settles the create (a person decides, maybe much later), except
        # when the target's policy is about to reject this consumer: then the Operation waits
        # for that decision and fails with it, instead of reporting success a moment earlier.
        awaiting_policy = (
            aws_state == "PENDING_ACCEPTANCE"
            and linkplane is not None
            and acceptance.decide(
                linkplane.spec.acceptance_policy, ctx.account.account_id, {}
            ).verdict
            == "REJECTED"
        )
        # A stalled field settles the Operation too (it fails with the Stalled condition's
        # message, see progress.settle_connection): waiting for it could take hours.
        settled = not awaiting_policy and (
            ready
            or bool(applied.stalled and not changing)
            or aws_state in {"PENDING_ACCEPTANCE", "REJECTED", "FAILED", "EXPIRED"}
        )
        await self._write(
            lease,
            status,
            state,
            converged=settled,
            reconciling=not ready and aws_state == "AVAILABLE",
            endpoint_id=endpoint.endpoint_id,
            message={
                "PENDING_ACCEPTANCE": "waiting for the provider to accept the connection",
                "PROVISIONING": "accepted; AWS is provisioning the endpoint",
                "AVAILABLE": "available" if ready else f"available; {message}",
            }.get(state, f"endpoint is {aws_state.lower()}"),
        )
        resync = self.ws.timing.resync_seconds
        if changing:
            return engine.Pass(self.ws.timing.transitional_seconds)
        if applied.stalled:
            return engine.Pass(stalls.soonest_retry(applied.stalled, resync))
        if ready or aws_state in {"REJECTED", "FAILED", "EXPIRED"}:
            return engine.Pass(self.ws.timing.resync_delay())
        if aws_state == "PENDING_ACCEPTANCE" and linkplane is not None:
            # A linkplane Service pokes this Connection when it decides; polling fast here
            # only loads AWS and the database (hundreds of requests waiting for a person).
            return engine.Pass(self.ws.timing.resync_delay())
        return engine.Pass(self.ws.timing.transitional_seconds)

    # ---- delete -----------------------------------------------------------------------------

    async def _delete(self, lease: leases.Lease, ctx: calls.Context, uid: str) -> engine.Pass:
        owned = [
            aws_endpoints.Endpoint.parse(e)
            for e in await aws_endpoints.find_endpoints_by_uid(ctx, uid)
        ]
        remaining = [e.endpoint_id for e in owned if e.state != "DELETED"]
        deletable = [e.endpoint_id for e in owned if e.state not in states.GONE_ENDPOINT_STATES]
        if deletable:
            failures = await aws_endpoints.delete_endpoints(ctx, deletable)
            if failures:
                raise failures[0]
        if remaining:
            await self._write(
                lease,
                None,
                "DELETING",
                converged=False,
                message=f"waiting for {len(remaining)} endpoint(s) to be deleted",
            )
            return engine.Pass(self.ws.timing.transitional_seconds)
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            service = specs.connection_from_json(row.spec).service
            await progress.finish_deletion(session, row, KIND)
        await self._poke(service)
        return engine.Pass(0)

    async def _poke(self, service: str) -> None:
        """Have the target Service look at its connections now (decide, refresh inventory)."""
        if not service:
            return
        async with self.ws.db.transaction() as session:
            await leases.poke_service(session, service)

    async def _write(
        self,
        lease: leases.Lease,
        status: dict[str, Any] | None,
        state: str,
        *,
        converged: bool,
        message: str,
        reconciling: bool = False,
        endpoint_id: str | None = None,
    ) -> None:
        """Store this pass's findings. ``converged`` records the generation as observed (its
        operations may finish); ``reconciling`` keeps the flag up even so (a stalled field)."""
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Connection, lease)
            before = (row.state, row.status, row.reconciling, row.observed_generation)
            if status is not None:
                row.status = status
            if row.delete_time is None or state == "DELETING":
                row.state = state
            if converged:
                row.observed_generation = lease.generation
            row.reconciling = reconciling or not converged or row.generation != lease.generation
            if endpoint_id:
                row.endpoint_id = endpoint_id
            if before != (row.state, row.status, row.reconciling, row.observed_generation):
                row.revision += 1
                records.mark_updated(row)
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, message)
            await records.write_back(session, row)
            await progress.settle_connection(session, row)
