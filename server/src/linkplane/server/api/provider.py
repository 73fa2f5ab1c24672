"""ProviderService: publish services and decide on their connection requests.

Why one module of ~520 lines: a gRPC servicer is one class whose methods are the service's
RPCs; the shared steps live in ``api/standard`` and ``api/rpc``, what is left is per RPC.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from linkplane.server.api import fields, resources, rpc, standard, watches
from linkplane.server.domain import errors, filters, names, pagination, specs, states, validation
from linkplane.server.protocol import cached, converters
from linkplane.server.storage import (
    decisions,
    filtering,
    inventory,
    leases,
    models,
    records,
)
from linkplane.v1 import provider_service_pb2, provider_service_pb2_grpc, service_pb2

Context = grpc.aio.ServicerContext[Any, Any]
KIND = "service"
WRITABLE = {
    "display_name",
    "load_balancer",
    "acceptance_policy",
    "allowed_principals",
    "private_dns_name",
    "supported_ip_address_types",
    "supported_regions",
    "labels",
}
IMMUTABLE = {"provider_account", "region"}
OUTPUT_ONLY = {
    "uid",
    "state",
    "reconciling",
    "conditions",
    "generation",
    "observed_generation",
    "service_id",
    "service_name",
    "network_load_balancer_arns",
    "base_endpoint_dns_names",
    "private_dns_verification",
    "connection_counts",
    "availability_zones",
    "last_aws_error",
    "create_time",
    "update_time",
    "delete_time",
}
FILTER_FIELDS = {"state", "region", "provider_account", "display_name", "labels", "service_name"}
FILTER_ENUMS = {"state": states.SERVICE_STATES}
CONNECTION_FILTER_FIELDS = {"state", "owner_account_id", "vpc_id", "region", "connection"}
CONNECTION_FILTER_ENUMS = {"state": states.ENDPOINT_STATES}


def check_service(spec: specs.ServiceSpec, prefix: str) -> list[errors.FieldViolation]:
    """The domain's checks, plus: adopted NLBs belong to the provider account and Region
    (AWS would refuse another account's NLB only later, on the worker)."""
    violations = validation.check_service(spec, prefix)
    if violations or spec.load_balancer.managed is not None:
        return violations
    account = spec.provider_account.rsplit("/", 1)[-1]
    for i, arn in enumerate(spec.load_balancer.adopted_arns):
        parts = arn.split(":")
        path = f"{prefix}.load_balancer.adopted.network_load_balancer_arns[{i}]"
        if len(parts) < 6:
            continue
        if parts[4] != account:
            violations.append(
                errors.FieldViolation(
                    path,
                    f"belongs to account {parts[4]}; an endpoint service can only use NLBs of "
                    f"its provider account {account}",
                )
            )
        elif parts[3] != spec.region:
            violations.append(
                errors.FieldViolation(path, f"is in {parts[3]}; the service is in {spec.region}")
            )
    return violations


SERVICES = standard.Kind(
    name=KIND,
    collection="services",
    field="service",
    model=models.Service,
    to_message=converters.service,
    spec_of=converters.service_spec,
    load_spec=specs.service_from_json,
    check=check_service,
    writable=frozenset(WRITABLE),
    immutable=frozenset(IMMUTABLE),
    output_only=frozenset(OUTPUT_ONLY),
    filter_fields=frozenset(FILTER_FIELDS),
    filter_enums=FILTER_ENUMS,
    columns=filtering.service_columns,
    recreate_hint="publish a new service",
    state_on_update=states.service_state_on_update,
    from_read=cached.services,
)


class ProviderServicer(provider_service_pb2_grpc.ProviderServiceServicer):
    def __init__(self, deps: rpc.Dependencies) -> None:
        self.deps = deps

    @rpc.unary
    async def PublishService(
        self, request: provider_service_pb2.PublishServiceRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        project = fields.project_of(request.parent)
        service_id = fields.resource_id(request.service_id, "svc", "service_id")
        if not request.HasField("service"):
            raise errors.InvalidArgument([errors.FieldViolation("service", "is required")])
        spec = converters.service_spec(request.service)
        violations = check_service(spec, "service")
        if violations:
            raise errors.InvalidArgument(violations)
        rpc.check_request_id(request.request_id)
        name = f"projects/{project}/services/{service_id}"
        async with self.deps.db.transaction() as session:
            if not request.validate_only:
                earlier = await rpc.replay(session, "PublishService", request)
                if earlier is not None:
                    return await resources.replayed_operation(session, earlier.operation_id)
            await resources.check_account_ref(
                session,
                spec.provider_account,
                spec.region,
                "service.provider_account",
                "service.region",
            )
            if await records.get(session, models.Service, name) is not None:
                raise errors.AlreadyExists(name, kind="service")
            row = models.Service(
                uid=uuid.uuid4(),
                name=name,
                project=project,
                display_name=spec.display_name,
                labels=spec.labels,
                spec=specs.to_json(spec),
                generation=1,
                observed_generation=0,
                state="CREATING",
                reconciling=True,
                status={},
                revision=1,
                provider_account=spec.provider_account,
                region=spec.region,
                force_delete=False,
                fencing_token=0,
                attempts=0,
            )
            if request.validate_only:
                return resources.preview(
                    converters.pack(converters.service(_transient(row))), name, "publish"
                )
            row = await records.insert(session, row)
            return await standard.conclude(
                session,
                kind=SERVICES,
                row=row,
                verb="publish",
                method="PublishService",
                request=request,
                actor=actor,
                progress="waiting for a worker to create the endpoint service",
                details={"spec": specs.to_json(spec)},
            )

    @rpc.unary
    async def GetService(
        self, request: provider_service_pb2.GetServiceRequest, context: Context, actor: str
    ) -> service_pb2.Service:
        message = await standard.get(self.deps, SERVICES, request.name)
        assert isinstance(message, service_pb2.Service)
        return message

    @rpc.unary
    async def ListServices(
        self, request: provider_service_pb2.ListServicesRequest, context: Context, actor: str
    ) -> provider_service_pb2.ListServicesResponse:
        services, token = await standard.list_page(
            self.deps,
            SERVICES,
            parent=request.parent,
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
        )
        return provider_service_pb2.ListServicesResponse(
            services=services,
            next_page_token=token,
        )

    @rpc.unary
    async def UpdateService(
        self, request: provider_service_pb2.UpdateServiceRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        return await standard.update(
            self.deps,
            SERVICES,
            request=request,
            resource=request.service,
            mask=request.update_mask,
            actor=actor,
            method="UpdateService",
        )

    @rpc.unary
    async def DeleteService(
        self, request: provider_service_pb2.DeleteServiceRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        name = str(fields.name_of(request.name, "services"))
        rpc.check_request_id(request.request_id)
        async with self.deps.db.transaction() as session:
            if not request.validate_only:
                earlier = await rpc.replay(session, "DeleteService", request)
                if earlier is not None:
                    return await resources.replayed_operation(session, earlier.operation_id)
            row = await records.get(session, models.Service, name, for_update=True)
            if row is None:
                raise errors.NotFound(name, kind="service")
            fields.check_etag(request.etag, row.uid, row.revision, name)
            live = await inventory.count_live(session, row, states.LIVE_ENDPOINT_STATES)
            if live and not request.force:
                raise errors.FailedPrecondition(
                    f"service {name} has {live} live connections; reject them or set force",
                    reason="SERVICE_HAS_CONNECTIONS",
                    metadata={"name": name, "live_connections": str(live)},
                )
            if request.validate_only:
                return resources.preview(converters.pack(empty_pb2.Empty()), name, "delete")
            row.force_delete = row.force_delete or request.force
            standard.mark_deleting(row)
            await records.flush(session)
            return await standard.conclude(
                session,
                kind=SERVICES,
                row=row,
                verb="delete",
                method="DeleteService",
                request=request,
                actor=actor,
                progress="waiting for a worker to tear the service down",
                details={"force": request.force},
            )

    @rpc.unary
    async def ListServiceConnections(
        self,
        request: provider_service_pb2.ListServiceConnectionsRequest,
        context: Context,
        actor: str,
    ) -> provider_service_pb2.ListServiceConnectionsResponse:
        name = str(fields.name_of(request.parent, "services", "parent"))
        size = pagination.page_size(request.page_size)
        node = filters.parse(
            request.filter, fields=CONNECTION_FILTER_FIELDS, enums=CONNECTION_FILTER_ENUMS
        )
        key = [request.parent, request.filter]
        after = pagination.decode(self.deps.page_secret, key, request.page_token)
        async with self.deps.db.transaction() as session:
            service = await records.get(session, models.Service, name)
            if service is None:
                raise errors.NotFound(name, kind="service")
            rows, more = await inventory.page(
                session, service.uid, node=node, after=after, limit=size
            )
        token = pagination.encode(self.deps.page_secret, key, rows[-1].endpoint_id) if more else ""
        return provider_service_pb2.ListServiceConnectionsResponse(
            service_connections=[converters.service_connection(r, name) for r in rows],
            next_page_token=token,
        )

    @rpc.unary
    async def AcceptServiceConnections(
        self,
        request: provider_service_pb2.AcceptServiceConnectionsRequest,
        context: Context,
        actor: str,
    ) -> operations_pb2.Operation:
        return await self._decide(request, actor, "ACCEPTED")

    @rpc.unary
    async def RejectServiceConnections(
        self,
        request: provider_service_pb2.RejectServiceConnectionsRequest,
        context: Context,
        actor: str,
    ) -> operations_pb2.Operation:
        return await self._decide(request, actor, "REJECTED")

    async def _decide(
        self,
        request: provider_service_pb2.AcceptServiceConnectionsRequest
        | provider_service_pb2.RejectServiceConnectionsRequest,
        actor: str,
        verdict: str,
    ) -> operations_pb2.Operation:
        method = "AcceptServiceConnections" if verdict == "ACCEPTED" else "RejectServiceConnections"
        name = str(fields.name_of(request.service, "services", "service"))
        violations: list[errors.FieldViolation] = []
        if not request.endpoint_ids:
            violations.append(errors.FieldViolation("endpoint_ids", "at least 1 required"))
        if len(request.endpoint_ids) > 1000:
            violations.append(errors.FieldViolation("endpoint_ids", "at most 1000 allowed"))
        seen: set[str] = set()
        for i, endpoint_id in enumerate(request.endpoint_ids):
            if not names.ENDPOINT_ID.match(endpoint_id):
                violations.append(errors.FieldViolation(f"endpoint_ids[{i}]", "must be vpce-…"))
            elif endpoint_id in seen:
                violations.append(errors.FieldViolation(f"endpoint_ids[{i}]", "is listed twice"))
            seen.add(endpoint_id)
        if len(request.reason) > 1024:
            violations.append(errors.FieldViolation("reason", "at most 1024 characters"))
        if violations:
            raise errors.InvalidArgument(violations)
        rpc.check_request_id(request.request_id)
        async with self.deps.db.transaction() as session:
            if not request.validate_only:
                earlier = await rpc.replay(session, method, request)
                if earlier is not None:
                    return await resources.replayed_operation(session, earlier.operation_id)
            service = await records.get(session, models.Service, name, for_update=True)
            if service is None:
                raise errors.NotFound(name, kind="service")
            if service.delete_time is not None:
                raise errors.FailedPrecondition(
                    f"service {name} is being deleted",
                    reason="RESOURCE_DELETING",
                    metadata={"name": name},
                )
            known = await inventory.endpoint_states(session, service, request.endpoint_ids)
            refused = _refusals(name, request.endpoint_ids, known, verdict)
            if len(refused) == len(request.endpoint_ids):
                # Nothing to apply: answer at once, as for a single id.
                raise refused[request.endpoint_ids[0]].error
            if request.validate_only:
                response = (
                    provider_service_pb2.AcceptServiceConnectionsResponse()
                    if verdict == "ACCEPTED"
                    else provider_service_pb2.RejectServiceConnectionsResponse()
                )
                response.failures.extend(r.failure for r in refused.values())
                return resources.preview(converters.pack(response), name, verdict.lower())
            operation = await resources.start_operation(
                session,
                target=name,
                verb="accept" if verdict == "ACCEPTED" else "reject",
                kind=KIND,
                uid=service.uid,
                generation=service.generation,
                actor=actor,
                progress=f"waiting for a worker to send the decision on "
                f"{len(request.endpoint_ids)} connections to AWS",
            )
            operation_id = operation.name.split("/")[1]
            for endpoint_id in request.endpoint_ids:
                refusal = refused.get(endpoint_id)
                # A refused id is recorded as already applied, with its failure: the
                # Operation reports it next to the outcome of the others.
                decisions.record(
                    session,
                    service_uid=service.uid,
                    endpoint_id=endpoint_id,
                    verdict=verdict,
                    actor=actor,
                    reason=request.reason,
                    operation_id=operation_id,
                    outcome=refusal.outcome() if refusal else {},
                    refused=refusal is not None,
                )
            service.next_reconcile_at = leases.poke_time()
            await resources.record_mutation(
                session,
                method=method,
                request=request,
                actor=actor,
                resource=name,
                resource_uid=service.uid,
                details={"endpoint_ids": list(request.endpoint_ids), "reason": request.reason},
                operation_id=operation_id,
            )
            return operation

    @rpc.unary
    async def VerifyServicePrivateDns(
        self,
        request: provider_service_pb2.VerifyServicePrivateDnsRequest,
        context: Context,
        actor: str,
    ) -> operations_pb2.Operation:
        name = str(fields.name_of(request.name, "services"))
        rpc.check_request_id(request.request_id)
        method = "VerifyServicePrivateDns"
        async with self.deps.db.transaction() as session:
            if not request.validate_only:
                earlier = await rpc.replay(session, method, request)
                if earlier is not None:
                    return await resources.replayed_operation(session, earlier.operation_id)
            row = await records.get(session, models.Service, name, for_update=True)
            if row is None:
                raise errors.NotFound(name, kind="service")
            fields.check_etag(request.etag, row.uid, row.revision, name)
            if row.delete_time is not None:
                raise errors.FailedPrecondition(
                    f"service {name} is being deleted",
                    reason="RESOURCE_DELETING",
                    metadata={"name": name},
                )
            if not specs.service_from_json(row.spec).private_dns_name:
                raise errors.FailedPrecondition(
                    f"service {name} has no private_dns_name to verify",
                    reason="NO_PRIVATE_DNS_NAME",
                    metadata={"name": name},
                )
            if request.validate_only:
                return resources.preview(
                    converters.pack(converters.service(row)), name, "verify-dns"
                )
            row.next_reconcile_at = leases.poke_time()
            return await standard.conclude(
                session,
                kind=SERVICES,
                row=row,
                # The verb reconciler/private_dns.py settles (VERIFY_DNS) once AWS answers.
                verb="verify-dns",
                method=method,
                request=request,
                actor=actor,
                progress="waiting for a worker to ask AWS to verify the TXT record",
            )

    @rpc.streaming
    async def WatchServices(
        self, request: provider_service_pb2.WatchServicesRequest, context: Context, actor: str
    ) -> AsyncIterator[provider_service_pb2.WatchServicesResponse]:
        watcher = standard.watcher(
            self.deps, SERVICES, parent=request.parent, filter_text=request.filter
        )
        async for response in watcher.responses(
            send_initial=request.send_initial,
            build=lambda event_type, message: provider_service_pb2.WatchServicesResponse(
                type=event_type, service=message, event_time=watches.now()
            ),
        ):
            yield response


@dataclass(frozen=True)
class _Refusal:
    """Why one endpoint of a bulk decision cannot be decided: its own failure, not the
    batch's."""

    endpoint_id: str
    code: str
    error: errors.DomainError

    @property
    def failure(self) -> provider_service_pb2.ConnectionDecisionFailure:
        return provider_service_pb2.ConnectionDecisionFailure(
            endpoint_id=self.endpoint_id, code=self.code, message=str(self.error)
        )

    def outcome(self) -> dict[str, str]:
        return {"code": self.code, "message": str(self.error)}


def _refusals(
    name: str, endpoint_ids: Sequence[str], known: Mapping[str, str], verdict: str
) -> dict[str, _Refusal]:
    """Endpoints of a bulk accept/reject that are unknown or in a state the verdict does not
    apply to (the codes the reconciler uses for the same refusals)."""
    allowed = states.DECIDABLE[verdict]
    refused: dict[str, _Refusal] = {}
    for endpoint_id in endpoint_ids:
        state = known.get(endpoint_id)
        if state is None:
            refused[endpoint_id] = _Refusal(
                endpoint_id,
                "EndpointNotFound",
                errors.NotFound(
                    f"{name}/serviceConnections/{endpoint_id}", kind="service connection"
                ),
            )
        elif state not in allowed:
            refused[endpoint_id] = _Refusal(
                endpoint_id,
                "IncorrectState",
                errors.FailedPrecondition(
                    f"connection {endpoint_id} is {state}; cannot set {verdict}",
                    reason="CONNECTION_STATE",
                    metadata={"endpoint_id": endpoint_id, "state": state},
                ),
            )
    return refused


def _transient(row: models.Service) -> models.Service:
    """Fill server defaults so a never-saved row converts for a validate_only preview."""
    row.create_time = row.update_time = datetime.now(UTC)
    return row
