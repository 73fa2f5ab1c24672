"""ConsumerService: connect consumer VPCs to endpoint services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2
from sqlalchemy import func

from linkplane.server.api import fields, resources, rpc, watches
from linkplane.server.domain import errors, filters, pagination, specs, states, validation
from linkplane.server.protocol import converters
from linkplane.server.storage import audit, models, records
from linkplane.v1 import connection_pb2, consumer_service_pb2, consumer_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
KIND = "connection"
WRITABLE = {
    "display_name",
    "subnet_ids",
    "security_group_ids",
    "ip_address_type",
    "private_dns_enabled",
    "policy_document",
    "request_message",
    "labels",
}
IMMUTABLE = {"service", "service_name", "consumer_account", "region", "service_region", "vpc_id"}
OUTPUT_ONLY = {
    "uid",
    "state",
    "reconciling",
    "conditions",
    "generation",
    "observed_generation",
    "endpoint_id",
    "resolved_service_name",
    "dns_entries",
    "network_interfaces",
    "last_aws_error",
    "create_time",
    "update_time",
    "delete_time",
}
FILTER_FIELDS = {
    "state",
    "region",
    "consumer_account",
    "service",
    "service_name",
    "vpc_id",
    "display_name",
    "labels",
    "endpoint_id",
}
FILTER_ENUMS = {"state": states.CONNECTION_STATES}


def columns() -> dict[str, Any]:
    m = models.Connection
    return {
        "state": m.state,
        "region": m.region,
        "consumer_account": m.consumer_account,
        "service": m.service,
        "service_name": m.service_name,
        "vpc_id": m.vpc_id,
        "display_name": m.display_name,
        "labels": m.labels,
        "endpoint_id": m.endpoint_id,
    }


class ConsumerServicer(consumer_service_pb2_grpc.ConsumerServiceServicer):
    def __init__(self, deps: rpc.Dependencies) -> None:
        self.deps = deps

    @rpc.unary
    async def CreateConnection(
        self, request: consumer_service_pb2.CreateConnectionRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        project = fields.project_of(request.parent)
        connection_id = fields.resource_id(request.connection_id, "conn", "connection_id")
        if not request.HasField("connection"):
            raise errors.InvalidArgument([errors.FieldViolation("connection", "is required")])
        spec = converters.connection_spec(request.connection)
        violations = validation.check_connection(spec, "connection")
        if violations:
            raise errors.InvalidArgument(violations)
        rpc.check_request_id(request.request_id)
        name = f"projects/{project}/connections/{connection_id}"
        async with self.deps.db.transaction() as session:
            if not request.validate_only:
                earlier = await rpc.replay(session, "CreateConnection", request)
                if earlier is not None:
                    return await resources.replayed_operation(session, earlier.operation_id)
            await resources.check_account_ref(
                session,
                spec.consumer_account,
                spec.region,
                "connection.consumer_account",
                "connection.region",
            )
            if spec.service:
                target = await records.get(session, models.Service, spec.service)
                if target is None or target.delete_time is not None:
                    raise errors.InvalidArgument(
                        [
                            errors.FieldViolation(
                                "connection.service", f"service {spec.service} does not exist"
                            )
                        ],
                        reason="SERVICE_NOT_FOUND",
                    )
            if await records.get(session, models.Connection, name) is not None:
                raise errors.AlreadyExists(name, kind="connection")
            row = models.Connection(
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
                consumer_account=spec.consumer_account,
                region=spec.region,
                service=spec.service,
                service_name=spec.service_name,
                vpc_id=spec.vpc_id,
                fencing_token=0,
                attempts=0,
            )
            if request.validate_only:
                row.create_time = row.update_time = datetime.now(UTC)
                return resources.preview(
                    converters.pack(converters.connection(row)), name, "create"
                )
            session.add(row)
            await session.flush()
            await session.refresh(row)
            operation = await resources.start_operation(
                session,
                target=name,
                verb="create",
                kind=KIND,
                uid=row.uid,
                generation=1,
                actor=actor,
                progress="waiting for a worker to create the interface endpoint",
            )
            await audit.record(
                session,
                actor=actor,
                action="CreateConnection",
                resource=name,
                resource_uid=row.uid,
                request_id=request.request_id,
                details={"spec": specs.to_json(spec)},
            )
            await rpc.remember(
                session, "CreateConnection", request, operation_id=operation.name.split("/")[1]
            )
            return operation

    @rpc.unary
    async def GetConnection(
        self, request: consumer_service_pb2.GetConnectionRequest, context: Context, actor: str
    ) -> connection_pb2.Connection:
        name = str(fields.name_of(request.name, "connections"))
        async with self.deps.db.transaction() as session:
            row = await records.get(session, models.Connection, name)
            if row is None:
                raise errors.NotFound(name, kind="connection")
            return converters.connection(row)

    @rpc.unary
    async def ListConnections(
        self, request: consumer_service_pb2.ListConnectionsRequest, context: Context, actor: str
    ) -> consumer_service_pb2.ListConnectionsResponse:
        project = fields.project_of(request.parent)
        size = pagination.page_size(request.page_size)
        node = filters.parse(request.filter, fields=FILTER_FIELDS, enums=FILTER_ENUMS)
        key = [request.parent, request.filter]
        after = pagination.decode(self.deps.page_secret, key, request.page_token)
        async with self.deps.db.transaction() as session:
            rows, more = await records.page(
                session,
                models.Connection,
                project=project,
                node=node,
                columns=columns(),
                after=after,
                limit=size,
            )
        token = pagination.encode(self.deps.page_secret, key, rows[-1].name) if more else ""
        return consumer_service_pb2.ListConnectionsResponse(
            connections=[converters.connection(r) for r in rows], next_page_token=token
        )

    @rpc.unary
    async def UpdateConnection(
        self, request: consumer_service_pb2.UpdateConnectionRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        name = str(fields.name_of(request.connection.name, "connections", "connection.name"))
        paths = fields.mask_paths(request.update_mask, WRITABLE | IMMUTABLE, OUTPUT_ONLY)
        rpc.check_request_id(request.request_id)
        incoming = converters.connection_spec(request.connection)
        async with self.deps.db.transaction() as session:
            if not request.validate_only:
                earlier = await rpc.replay(session, "UpdateConnection", request)
                if earlier is not None:
                    return await resources.replayed_operation(session, earlier.operation_id)
            row = await records.get(session, models.Connection, name, for_update=True)
            if row is None:
                raise errors.NotFound(name, kind="connection")
            fields.check_etag(request.connection.etag, row.uid, row.revision, name)
            if row.delete_time is not None:
                raise errors.FailedPrecondition(
                    f"connection {name} is being deleted",
                    reason="RESOURCE_DELETING",
                    metadata={"name": name},
                )
            spec = specs.connection_from_json(row.spec)
            explicit = bool(request.update_mask.paths) and list(request.update_mask.paths) != ["*"]
            immutable_changes = [
                errors.FieldViolation(f"connection.{p}", "is immutable; create a new connection")
                for p in sorted(paths & IMMUTABLE)
                if getattr(incoming, p) != getattr(spec, p) and (explicit or getattr(incoming, p))
            ]
            if immutable_changes:
                raise errors.InvalidArgument(immutable_changes)
            for path in paths - IMMUTABLE:
                setattr(spec, path, getattr(incoming, path))
            violations = validation.check_connection(spec, "connection")
            if violations:
                raise errors.InvalidArgument(violations)
            changed = specs.to_json(spec) != row.spec
            if request.validate_only:
                return resources.preview(
                    converters.pack(converters.connection(row)), name, "update"
                )
            if changed:
                row.spec = specs.to_json(spec)
                row.display_name = spec.display_name
                row.labels = spec.labels
                row.generation += 1
                row.reconciling = True
                row.next_reconcile_at = func.now()
                row.revision += 1
                row.update_time = func.now()
            await session.flush()
            await session.refresh(row)
            operation = await resources.start_operation(
                session,
                target=name,
                verb="update",
                kind=KIND,
                uid=row.uid,
                generation=row.generation,
                actor=actor,
                progress="waiting for a worker to apply the change" if changed else "no change",
            )
            await audit.record(
                session,
                actor=actor,
                action="UpdateConnection",
                resource=name,
                resource_uid=row.uid,
                request_id=request.request_id,
                details={"paths": sorted(paths), "changed": changed, "spec": specs.to_json(spec)},
            )
            await rpc.remember(
                session, "UpdateConnection", request, operation_id=operation.name.split("/")[1]
            )
            return operation

    @rpc.unary
    async def DeleteConnection(
        self, request: consumer_service_pb2.DeleteConnectionRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        name = str(fields.name_of(request.name, "connections"))
        rpc.check_request_id(request.request_id)
        async with self.deps.db.transaction() as session:
            if not request.validate_only:
                earlier = await rpc.replay(session, "DeleteConnection", request)
                if earlier is not None:
                    return await resources.replayed_operation(session, earlier.operation_id)
            row = await records.get(session, models.Connection, name, for_update=True)
            if row is None:
                raise errors.NotFound(name, kind="connection")
            fields.check_etag(request.etag, row.uid, row.revision, name)
            if request.validate_only:
                return resources.preview(converters.pack(empty_pb2.Empty()), name, "delete")
            if row.delete_time is None:
                row.delete_time = func.now()
            row.state = "DELETING"
            row.reconciling = True
            row.next_reconcile_at = func.now()
            row.revision += 1
            row.update_time = func.now()
            await session.flush()
            operation = await resources.start_operation(
                session,
                target=name,
                verb="delete",
                kind=KIND,
                uid=row.uid,
                generation=row.generation,
                actor=actor,
                progress="waiting for a worker to delete the endpoint",
            )
            await audit.record(
                session,
                actor=actor,
                action="DeleteConnection",
                resource=name,
                resource_uid=row.uid,
                request_id=request.request_id,
            )
            await rpc.remember(
                session, "DeleteConnection", request, operation_id=operation.name.split("/")[1]
            )
            return operation

    @rpc.streaming
    async def WatchConnections(
        self, request: consumer_service_pb2.WatchConnectionsRequest, context: Context, actor: str
    ) -> AsyncIterator[consumer_service_pb2.WatchConnectionsResponse]:
        project = fields.project_of(request.parent)
        node = filters.parse(request.filter, fields=FILTER_FIELDS, enums=FILTER_ENUMS)
        watcher = watches.Watcher(
            db=self.deps.db,
            feed=self.deps.feed,
            kind=KIND,
            model=models.Connection,
            project=project,
            node=node,
            columns=columns(),
            convert=converters.connection,
        )
        async for event_type, message in watcher.events(send_initial=request.send_initial):
            yield consumer_service_pb2.WatchConnectionsResponse(
                type=event_type, connection=message, event_time=watches.now()
            )
