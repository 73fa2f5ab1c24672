"""The Service reconciler: NLB → endpoint service → permissions → private DNS → connections.

Each pass reads the spec from Postgres and the truth from AWS, then takes every step that is
due, idempotently: objects are found by their `linkplane:uid` tag (or by their deterministic
ELBv2 name) before anything is created, and created with a deterministic ClientToken and the
tag in the same call. Teardown follows AWS's order: reject live connections, delete the
endpoint service, wait until it is gone, then delete the managed NLB and its target groups.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert

from linkplane.server.aws import calls, loadbalancers, tags
from linkplane.server.aws import errors as aws_errors
from linkplane.server.aws import services as aws_services
from linkplane.server.domain import acceptance, specs, states
from linkplane.server.reconciler import engine, labels, progress
from linkplane.server.reconciler.workspace import Workspace
from linkplane.server.storage import audit, changes, leases, models

log = structlog.get_logger("linkplane.reconciler.services")
KIND = "service"
LB_ACTIVE = "active"


class ServiceReconciler:
    kind = KIND
    model = models.Service

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def urgent(self) -> Any:
        # Decisions recorded by AcceptServiceConnections while this worker held the lease.
        return exists().where(
            and_(
                models.ConnectionDecision.service_uid == models.Service.uid,
                models.ConnectionDecision.applied_at.is_(None),
            )
        )

    async def record_failure(
        self, lease: leases.Lease, error: aws_errors.AwsError, attempts: int
    ) -> None:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            status = dict(row.status or {})
            status["last_aws_error"] = progress.aws_error_json(error)
            progress.set_condition(
                status,
                "Ready",
                False if not error.retryable else None,
                "AwsError" if not error.retryable else "AwsRetrying",
                str(error),
                row.generation,
            )
            row.status = status
            if not error.retryable and row.delete_time is None:
                row.state = "FAILED"
                row.reconciling = False
                row.observed_generation = row.generation
            row.update_time = func.now()
            row.revision += 1
            await progress.set_progress(
                session,
                row.uid,
                f"AWS said {error.code}; retrying" if error.retryable else f"failed: {error}",
            )
            await session.flush()
            await session.refresh(row)
            await progress.settle_service(session, row)
            await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))

    async def reconcile(self, lease: leases.Lease) -> engine.Pass:
        async with self.ws.db.transaction() as session:
            row = await leases.load(session, models.Service, lease)
            spec = specs.service_from_json(row.spec)
            snapshot = _Snapshot(
                uid=str(row.uid),
                name=row.name,
                generation=row.generation,
                deleting=row.delete_time is not None,
                force=row.force_delete,
                status=dict(row.status or {}),
            )
        account = await self.ws.account(spec.provider_account)
        ctx = self.ws.context(account, spec.region)
        if snapshot.deleting:
            return await self._teardown(lease, ctx, spec, snapshot)
        return await self._converge(lease, ctx, spec, snapshot)

    # ---- converge --------------------------------------------------------------------------

    async def _converge(
        self, lease: leases.Lease, ctx: calls.Context, spec: specs.ServiceSpec, snap: _Snapshot
    ) -> engine.Pass:
        status = snap.status
        transitional = self.ws.timing.transitional_seconds
        arns, lb_ready, lb_message = await self._ensure_load_balancers(ctx, spec, snap)
        status["network_load_balancer_arns"] = arns
        progress.set_condition(
            status,
            "LoadBalancerReady",
            lb_ready,
            "Active" if lb_ready else "Provisioning",
            lb_message,
            snap.generation,
        )
        if not lb_ready:
            await self._write(
                lease, status, state=None, converged=False, progress_message=lb_message
            )
            return engine.Pass(transitional)

        config = await aws_services.find_endpoint_service_by_uid(ctx, snap.uid)
        if config is None:
            extra: dict[str, Any] = {}
            if spec.private_dns_name:
                extra["PrivateDnsName"] = spec.private_dns_name
            if spec.supported_ip_address_types:
                extra["SupportedIpAddressTypes"] = spec.supported_ip_address_types
            if spec.supported_regions:
                extra["SupportedRegions"] = spec.supported_regions
            config = await aws_services.create_endpoint_service(
                ctx,
                uid=snap.uid,
                generation=snap.generation,
                name=snap.name,
                network_load_balancer_arns=arns,
                acceptance_required=acceptance.acceptance_required(spec),
                labels=spec.labels,
                **extra,
            )
        service_id = config["ServiceId"]
        await labels.sync_ec2_tags(ctx, service_id, config, spec.labels)
        changed = await self._apply_configuration(ctx, spec, config, arns)
        changed |= await self._apply_permissions(ctx, spec, service_id)
        if changed:
            config = await aws_services.find_endpoint_service_by_uid(ctx, snap.uid) or config
        await self._verify_private_dns(ctx, spec, config, status, snap)

        aws_state = str(config.get("ServiceState", "")).lower()
        available = aws_state == "available"
        status.update(
            service_id=service_id,
            service_name=config.get("ServiceName", ""),
            base_endpoint_dns_names=list(config.get("BaseEndpointDnsNames", [])),
            availability_zones=sorted(config.get("AvailabilityZones", [])),
        )
        dns = config.get("PrivateDnsNameConfiguration") or {}
        if spec.private_dns_name and dns:
            status["private_dns_verification"] = {
                "txt_record_name": dns.get("Name", ""),
                "txt_record_value": dns.get("Value", ""),
                "state": _dns_state(dns.get("State", "")),
            }
        else:
            status.pop("private_dns_verification", None)

        connections = (
            await aws_services.describe_endpoint_connections(ctx, service_id) if available else []
        )
        decided = await self._decide(lease, ctx, spec, service_id, connections)
        if decided:
            connections = await aws_services.describe_endpoint_connections(ctx, service_id)
        counts = Counter(
            states.normalise_endpoint_state(c.get("VpcEndpointState", "")) for c in connections
        )
        status["connection_counts"] = {
            "pending_acceptance": counts["PENDING_ACCEPTANCE"],
            "pending": counts["PENDING"],
            "available": counts["AVAILABLE"],
            "rejected": counts["REJECTED"],
            "failed": counts["FAILED"] + counts["EXPIRED"] + counts["PARTIAL"],
            "total": len(connections),
        }
        status.pop("last_aws_error", None)
        converged = available and not changed
        progress.set_condition(
            status,
            "Ready",
            converged,
            "Available" if converged else "Converging",
            "the endpoint service matches the spec"
            if converged
            else f"endpoint service is {aws_state or 'being created'}",
            snap.generation,
        )
        await self._write(
            lease,
            status,
            state="ACTIVE" if converged else None,
            converged=converged,
            progress_message="active" if converged else f"endpoint service is {aws_state}",
            service_id=service_id,
            service_name=config.get("ServiceName", ""),
            connections=connections,
        )
        pending_people = counts["PENDING_ACCEPTANCE"] + counts["PENDING"]
        if not converged or pending_people:
            return engine.Pass(transitional)
        return engine.Pass(self.ws.timing.resync_seconds)

    async def _ensure_load_balancers(
        self, ctx: calls.Context, spec: specs.ServiceSpec, snap: _Snapshot
    ) -> tuple[list[str], bool, str]:
        """The NLB ARNs, whether all are active, and a progress message."""
        managed = spec.load_balancer.managed
        if managed is None:
            response = await ctx.call(
                "elbv2", "DescribeLoadBalancers", LoadBalancerArns=spec.load_balancer.adopted_arns
            )
            lbs = response.get("LoadBalancers", [])
            not_network = [lb["LoadBalancerArn"] for lb in lbs if lb.get("Type") != "network"]
            if not_network:
                raise aws_errors.AwsError(
                    "NotANetworkLoadBalancer",
                    f"endpoint services need Network Load Balancers: {', '.join(not_network)}",
                    kind=aws_errors.Kind.INVALID,
                    retryable=False,
                    action="DescribeLoadBalancers",
                )
            ready = all(lb.get("State", {}).get("Code") == LB_ACTIVE for lb in lbs)
            return (
                list(spec.load_balancer.adopted_arns),
                ready,
                ("adopted load balancers are active" if ready else "waiting for adopted NLBs"),
            )
        name = tags.deterministic_name(snap.uid, "nlb")
        lb_tags = tags.tags(snap.uid, "load-balancer", snap.name, spec.labels)
        lb = await loadbalancers.find_load_balancer_by_name(ctx, name)
        if lb is None:
            response = await ctx.call(
                "elbv2",
                "CreateLoadBalancer",
                Name=name,
                Subnets=managed.subnet_ids,
                Scheme="internal",
                Type="network",
                Tags=lb_tags,
            )
            lb = response["LoadBalancers"][0]
        arn = lb["LoadBalancerArn"]
        vpc_id = lb.get("VpcId", "")
        listeners = {
            existing["Port"]: existing
            for existing in (await ctx.call("elbv2", "DescribeListeners", LoadBalancerArn=arn)).get(
                "Listeners", []
            )
        }
        for listener in managed.listeners:
            target_port = listener.target_port or listener.port
            group_name = tags.deterministic_name(snap.uid, f"tg{listener.port}")
            group = await _find_target_group(ctx, group_name)
            if group is None:
                target_type = (
                    "instance" if any(t.id.startswith("i-") for t in managed.targets) else "ip"
                )
                group = (
                    await ctx.call(
                        "elbv2",
                        "CreateTargetGroup",
                        Name=group_name,
                        Protocol=listener.protocol,
                        Port=target_port,
                        VpcId=vpc_id,
                        TargetType=target_type,
                        Tags=tags.tags(snap.uid, "target-group", snap.name, spec.labels),
                    )
                )["TargetGroups"][0]
            if managed.targets and snap.status.get("targets_generation") != snap.generation:
                await ctx.call(
                    "elbv2",
                    "RegisterTargets",
                    TargetGroupArn=group["TargetGroupArn"],
                    Targets=[{"Id": t.id, "Port": t.port or target_port} for t in managed.targets],
                )
            if listener.port not in listeners:
                await ctx.call(
                    "elbv2",
                    "CreateListener",
                    LoadBalancerArn=arn,
                    Protocol=listener.protocol,
                    Port=listener.port,
                    DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}],
                )
        snap.status["targets_generation"] = snap.generation
        state = lb.get("State", {}).get("Code", "")
        if state != LB_ACTIVE:
            refreshed = await loadbalancers.find_load_balancer_by_name(ctx, name)
            state = (refreshed or lb).get("State", {}).get("Code", "")
        ready = state == LB_ACTIVE
        return [arn], ready, "the NLB is active" if ready else f"waiting for the NLB ({state})"

    async def _apply_configuration(
        self, ctx: calls.Context, spec: specs.ServiceSpec, config: dict[str, Any], arns: list[str]
    ) -> bool:
        params: dict[str, Any] = {}
        required = acceptance.acceptance_required(spec)
        if bool(config.get("AcceptanceRequired")) != required:
            params["AcceptanceRequired"] = required
        current_arns = set(config.get("NetworkLoadBalancerArns", []))
        if add := sorted(set(arns) - current_arns):
            params["AddNetworkLoadBalancerArns"] = add
        if remove := sorted(current_arns - set(arns)):
            params["RemoveNetworkLoadBalancerArns"] = remove
        current_dns = config.get("PrivateDnsName") or ""
        if spec.private_dns_name and spec.private_dns_name != current_dns:
            params["PrivateDnsName"] = spec.private_dns_name
        elif not spec.private_dns_name and current_dns:
            params["RemovePrivateDnsName"] = True
        wanted_ip = set(spec.supported_ip_address_types or ["ipv4"])
        current_ip = set(config.get("SupportedIpAddressTypes") or ["ipv4"])
        if add := sorted(wanted_ip - current_ip):
            params["AddSupportedIpAddressTypes"] = add
        if remove := sorted(current_ip - wanted_ip):
            params["RemoveSupportedIpAddressTypes"] = remove
        current_regions = {
            r.get("Region")
            for r in config.get("SupportedRegions", [])
            if r.get("Region") != ctx.region
        }
        wanted_regions = set(spec.supported_regions) - {ctx.region}
        if add := sorted(wanted_regions - current_regions):
            params["AddSupportedRegions"] = add
        if remove := sorted(r for r in current_regions - wanted_regions if r):
            params["RemoveSupportedRegions"] = remove
        if not params:
            return False
        await ctx.call(
            "ec2", "ModifyVpcEndpointServiceConfiguration", ServiceId=config["ServiceId"], **params
        )
        return True

    async def _apply_permissions(
        self, ctx: calls.Context, spec: specs.ServiceSpec, service_id: str
    ) -> bool:
        current = {
            p["Principal"]
            for p in await ctx.collect(
                "ec2",
                "DescribeVpcEndpointServicePermissions",
                "AllowedPrincipals",
                ServiceId=service_id,
            )
        }
        wanted = {acceptance.permission_principal(p) for p in spec.allowed_principals}
        # Consumers named in accept rules must be able to see the service too.
        wanted |= {
            acceptance.permission_principal(r.principal)
            for r in spec.acceptance_policy.accept_rules
            if acceptance.account_of(r.principal) is not None
        }
        add, remove = sorted(wanted - current), sorted(current - wanted)
        if not add and not remove:
            return False
        params: dict[str, Any] = {"ServiceId": service_id}
        if add:
            params["AddAllowedPrincipals"] = add
        if remove:
            params["RemoveAllowedPrincipals"] = remove
        await ctx.call("ec2", "ModifyVpcEndpointServicePermissions", **params)
        return True

    async def _verify_private_dns(
        self,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        config: dict[str, Any],
        status: dict[str, Any],
        snap: _Snapshot,
    ) -> None:
        dns = config.get("PrivateDnsNameConfiguration") or {}
        if not spec.private_dns_name or not dns:
            return
        state = _dns_state(dns.get("State", ""))
        progress.set_condition(
            status,
            "PrivateDnsVerified",
            state == "VERIFIED",
            state.title().replace("_", ""),
            f"create TXT {dns.get('Name', '')} = {dns.get('Value', '')} in the domain's DNS"
            if state != "VERIFIED"
            else "the private DNS name is verified",
            snap.generation,
        )
        # Ask AWS to check once per generation; a person re-triggers by updating the service
        # after creating the TXT record.
        if state != "VERIFIED" and status.get("dns_verification_requested") != snap.generation:
            await ctx.call(
                "ec2",
                "StartVpcEndpointServicePrivateDnsVerification",
                ServiceId=config["ServiceId"],
            )
            status["dns_verification_requested"] = snap.generation

    async def _decide(
        self,
        lease: leases.Lease,
        ctx: calls.Context,
        spec: specs.ServiceSpec,
        service_id: str,
        connections: list[dict[str, Any]],
    ) -> bool:
        """Apply people's decisions, then the policy's; record each with who, when and why."""
        by_id = {c["VpcEndpointId"]: c for c in connections}
        state_of = {
            i: states.normalise_endpoint_state(c.get("VpcEndpointState", ""))
            for i, c in by_id.items()
        }
        async with self.ws.db.transaction() as session:
            pending = (
                (
                    await session.execute(
                        select(models.ConnectionDecision)
                        .where(
                            models.ConnectionDecision.service_uid == lease.uid,
                            models.ConnectionDecision.applied_at.is_(None),
                        )
                        .order_by(models.ConnectionDecision.id)
                    )
                )
                .scalars()
                .all()
            )
            manual = [(d.id, d.endpoint_id, d.verdict, d.actor, d.reason) for d in pending]
        plan: list[
            tuple[str, str, str, str, bool, int | None]
        ] = []  # id, verdict, actor, why, auto, decision row
        for decision_id, endpoint_id, verdict, actor, reason in manual:
            plan.append((endpoint_id, verdict, actor, reason, False, decision_id))
        manually = {p[0] for p in plan}
        live_by_owner: Counter[str] = Counter(
            c.get("VpcEndpointOwner", "")
            for i, c in by_id.items()
            if state_of[i] in {"PENDING", "AVAILABLE", "PARTIAL"}
        )
        for endpoint_id, connection in sorted(
            by_id.items(), key=lambda kv: str(kv[1].get("CreationTimestamp", ""))
        ):
            if endpoint_id in manually:
                continue
            owner = connection.get("VpcEndpointOwner", "")
            if state_of[endpoint_id] == "PENDING_ACCEPTANCE":
                ruling = acceptance.decide(spec.acceptance_policy, owner, live_by_owner)
                if ruling.verdict is not None:
                    plan.append(
                        (
                            endpoint_id,
                            ruling.verdict,
                            ruling.rule,
                            "acceptance policy",
                            True,
                            None,
                        )
                    )
                    if ruling.verdict == "ACCEPTED":
                        live_by_owner[owner] += 1
            elif (
                spec.acceptance_policy.reevaluate_existing
                and state_of[endpoint_id] in states.LIVE_ENDPOINT_STATES
                and not acceptance.still_allowed(spec, owner)
            ):
                plan.append(
                    (endpoint_id, "REJECTED", "policy:reevaluate", "no longer allowed", True, None)
                )
        if not plan:
            return False
        outcomes: dict[str, dict[str, str]] = {}
        for verdict, call in (
            ("ACCEPTED", aws_services.accept_connections),
            ("REJECTED", aws_services.reject_connections),
        ):
            ids = [
                p[0]
                for p in plan
                if p[1] == verdict and p[0] in by_id and state_of[p[0]] in states.DECIDABLE[verdict]
            ]
            if ids:
                result = await call(ctx, service_id, ids)
                for failure in _unsuccessful_of(result):
                    outcomes[failure[0]] = {"code": failure[1], "message": failure[2]}
        decided: list[str] = []
        async with self.ws.db.transaction() as session:
            await leases.load(session, models.Service, lease)
            for endpoint_id, verdict, actor, reason, automatic, decision_ref in plan:
                outcome = outcomes.get(endpoint_id)
                if endpoint_id not in by_id:
                    outcome = {
                        "code": "EndpointNotFound",
                        "message": f"{endpoint_id} is not connected to this service",
                    }
                elif state_of[endpoint_id] not in states.DECIDABLE[verdict] and outcome is None:
                    outcome = {
                        "code": "IncorrectState",
                        "message": f"{endpoint_id} is {state_of[endpoint_id]}",
                    }
                if decision_ref is not None:
                    decision = await session.get(models.ConnectionDecision, decision_ref)
                    if decision is not None:
                        decision.applied_at = func.now()
                        decision.outcome = outcome or {}
                if outcome is None:
                    await _record_decision(
                        session, lease.uid, endpoint_id, verdict, actor, reason, automatic
                    )
                    decided.append(endpoint_id)
                    log.info(
                        "service.decision",
                        service=str(lease.uid),
                        endpoint=endpoint_id,
                        verdict=verdict,
                        actor=actor,
                        automatic=automatic,
                    )
            if decided:
                # The consumers' Connections look now instead of polling for the verdict.
                await session.execute(
                    update(models.Connection)
                    .where(models.Connection.endpoint_id.in_(decided))
                    .values(next_reconcile_at=func.now())
                )
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
        connections: list[dict[str, Any]] | None = None,
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
                await _store_connections(session, row, connections)
            if before != (row.state, row.status, row.reconciling, row.observed_generation):
                row.revision += 1
                row.update_time = func.now()
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, progress_message)
            await session.flush()
            await session.refresh(row)
            await progress.settle_service(session, row)

    # ---- teardown --------------------------------------------------------------------------

    async def _teardown(
        self, lease: leases.Lease, ctx: calls.Context, spec: specs.ServiceSpec, snap: _Snapshot
    ) -> engine.Pass:
        transitional = self.ws.timing.transitional_seconds
        config = await aws_services.find_endpoint_service_by_uid(ctx, snap.uid)
        if config is not None:
            service_id = config["ServiceId"]
            connections = await aws_services.describe_endpoint_connections(ctx, service_id)
            live = aws_services.live_connection_ids(connections)
            if live and not snap.force:
                await self._note(
                    lease,
                    "DeleteBlocked",
                    f"{len(live)} live connections; delete with force to reject them",
                )
                return engine.Pass(transitional)
            if live:
                await aws_services.reject_connections(ctx, service_id, live)
                async with self.ws.db.transaction() as session:
                    await leases.load(session, models.Service, lease)
                    for endpoint_id in live:
                        await _record_decision(
                            session,
                            lease.uid,
                            endpoint_id,
                            "REJECTED",
                            "policy:force-delete",
                            "service deleted with force",
                            True,
                        )
            # Raises ExistingVpcEndpointConnections (retryable) while rejections settle.
            await aws_services.delete_endpoint_service(ctx, service_id)
            if await aws_services.find_endpoint_service_by_uid(ctx, snap.uid) is not None:
                await self._note(lease, "Deleting", "waiting for the endpoint service to go")
                return engine.Pass(transitional)
        if spec.load_balancer.managed is not None:
            name = tags.deterministic_name(snap.uid, "nlb")
            lb = await loadbalancers.find_load_balancer_by_name(ctx, name)
            if lb is not None:
                await ctx.call("elbv2", "DeleteLoadBalancer", LoadBalancerArn=lb["LoadBalancerArn"])
                if await loadbalancers.find_load_balancer_by_name(ctx, name) is not None:
                    await self._note(lease, "Deleting", "waiting for the NLB to go")
                    return engine.Pass(transitional)
            for listener in spec.load_balancer.managed.listeners:
                group = await _find_target_group(
                    ctx, tags.deterministic_name(snap.uid, f"tg{listener.port}")
                )
                if group is not None:
                    try:
                        await ctx.call(
                            "elbv2", "DeleteTargetGroup", TargetGroupArn=group["TargetGroupArn"]
                        )
                    except aws_errors.AwsError as error:
                        if not aws_errors.is_not_found(error):
                            raise
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
                row.update_time = func.now()
                await changes.notify(session, kind=KIND, name=row.name, uid=str(row.uid))
            await progress.set_progress(session, row.uid, message)


class _Snapshot:
    def __init__(
        self,
        *,
        uid: str,
        name: str,
        generation: int,
        deleting: bool,
        force: bool,
        status: dict[str, Any],
    ) -> None:
        self.uid = uid
        self.name = name
        self.generation = generation
        self.deleting = deleting
        self.force = force
        self.status = status


def _dns_state(value: str) -> str:
    return {
        "pendingverification": "PENDING_VERIFICATION",
        "verified": "VERIFIED",
        "failed": "FAILED",
    }.get(value.lower().replace("-", "").replace("_", ""), "UNSPECIFIED")


def _unsuccessful_of(result: Any) -> list[tuple[str, str, str]]:
    """(endpoint id, code, message) for every item AWS refused in a batch."""
    out: list[tuple[str, str, str]] = []
    items = result[1] if isinstance(result, tuple) else result
    for item in items or []:
        resource = getattr(item, "resource_id", None) or getattr(item, "ResourceId", "")
        error = getattr(item, "error", None)
        code = getattr(item, "code", "") or (error.code if error is not None else "")
        message = error.message if error is not None else ""
        out.append((str(resource), str(code), str(message)))
    return out


async def _find_target_group(ctx: calls.Context, name: str) -> dict[str, Any] | None:
    try:
        response = await ctx.call("elbv2", "DescribeTargetGroups", Names=[name])
    except aws_errors.AwsError as error:
        if aws_errors.is_not_found(error):
            return None
        raise
    found = response.get("TargetGroups", [])
    return found[0] if found else None


async def _record_decision(
    session: Any,
    service_uid: uuid.UUID,
    endpoint_id: str,
    verdict: str,
    actor: str,
    reason: str,
    automatic: bool,
) -> None:
    decision = {
        "verdict": verdict,
        "actor": actor,
        "reason": reason,
        "automatic": automatic,
        "time": progress.now_iso(),
    }
    await session.execute(
        insert(models.ServiceConnection)
        .values(
            service_uid=service_uid,
            endpoint_id=endpoint_id,
            owner_account_id="",
            state="PENDING_ACCEPTANCE",
            decision=decision,
            dns_entries={},
        )
        .on_conflict_do_update(
            index_elements=["service_uid", "endpoint_id"], set_={"decision": decision}
        )
    )
    service = await session.get(models.Service, service_uid)
    await audit.record(
        session,
        actor=actor,
        action=f"Connection{verdict.title()}",
        resource=f"{service.name}/serviceConnections/{endpoint_id}" if service else endpoint_id,
        resource_uid=service_uid,
        details={"reason": reason, "automatic": automatic},
    )


async def _store_connections(
    session: Any, service: models.Service, connections: list[dict[str, Any]]
) -> None:
    """Mirror AWS's view of the service's connections, including consumers outside linkplane."""
    endpoint_ids = [c["VpcEndpointId"] for c in connections]
    ours = {
        endpoint_id: (name, spec)
        for endpoint_id, name, spec in (
            await session.execute(
                select(
                    models.Connection.endpoint_id, models.Connection.name, models.Connection.spec
                ).where(models.Connection.endpoint_id.in_(endpoint_ids))
            )
        ).all()
    }
    for connection in connections:
        endpoint_id = connection["VpcEndpointId"]
        name, spec = ours.get(endpoint_id, ("", {}))
        created = connection.get("CreationTimestamp")
        values = {
            "owner_account_id": connection.get("VpcEndpointOwner", ""),
            "region": connection.get("VpcEndpointRegion", "") or "",
            "state": states.normalise_endpoint_state(connection.get("VpcEndpointState", "")),
            "connection_name": name,
            "request_message": (spec or {}).get("request_message", ""),
            "dns_entries": {
                "entries": [
                    {"dns_name": d.get("DnsName", ""), "hosted_zone_id": d.get("HostedZoneId", "")}
                    for d in connection.get("DnsEntries", [])
                ]
            },
            "create_time": created if isinstance(created, datetime) else None,
            "observe_time": func.now(),
        }
        await session.execute(
            insert(models.ServiceConnection)
            .values(service_uid=service.uid, endpoint_id=endpoint_id, decision={}, **values)
            .on_conflict_do_update(index_elements=["service_uid", "endpoint_id"], set_=values)
        )
    # Endpoints AWS no longer reports are gone (deleted by their owners).
    stale = select(models.ServiceConnection).where(
        models.ServiceConnection.service_uid == service.uid,
        models.ServiceConnection.endpoint_id.not_in(endpoint_ids),
        models.ServiceConnection.state != "DELETED",
    )
    for row in (await session.execute(stale)).scalars():
        row.state = "DELETED"
