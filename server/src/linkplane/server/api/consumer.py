"""ConsumerService: connect consumer VPCs to endpoint services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from linkplane.server.api import fields, resources, rpc, standard, watches
from linkplane.server.domain import errors, specs, states, validation
from linkplane.server.protocol import cached, converters
from linkplane.server.storage import filtering, models, records
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
    "route_table_ids",
}
IMMUTABLE = {
    "service",
    "service_name",
    "consumer_account",
    "region",
    "service_region",
    "vpc_id",
    "endpoint_type",
}
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


CONNECTIONS = standard.Kind(
    name=KIND,
    collection="connections",
    field="connection",
    model=models.Connection,
    to_message=converters.connection,
    spec_of=converters.connection_spec,
    load_spec=specs.connection_from_json,
    check=validation.check_connection,
    writable=frozenset(WRITABLE),
    immutable=frozenset(IMMUTABLE),
    output_only=frozenset(OUTPUT_ONLY),
    filter_fields=frozenset(FILTER_FIELDS),
    filter_enums=FILTER_ENUMS,
    columns=filtering.connection_columns,
    recreate_hint="create a new connection",
    state_on_update=lambda state: state,
    from_read=cached.connections,
)


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
            row = await records.insert(session, row)
            return await standard.conclude(
                session,
                kind=CONNECTIONS,
                row=row,
                verb="create",
                method="CreateConnection",
                request=request,
                actor=actor,
                progress="waiting for a worker to create the interface endpoint",
                details={"spec": specs.to_json(spec)},
            )

    @rpc.unary
    async def GetConnection(
        self, request: consumer_service_pb2.GetConnectionRequest, context: Context, actor: str
    ) -> connection_pb2.Connection:
        message = await standard.get(self.deps, CONNECTIONS, request.name)
        assert isinstance(message, connection_pb2.Connection)
        return message

    @rpc.unary
    async def ListConnections(
        self, request: consumer_service_pb2.ListConnectionsRequest, context: Context, actor: str
    ) -> consumer_service_pb2.ListConnectionsResponse:
        connections, token = await standard.list_page(
            self.deps,
            CONNECTIONS,
            parent=request.parent,
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
        )
        return consumer_service_pb2.ListConnectionsResponse(
            connections=connections,
            next_page_token=token,
        )

    @rpc.unary
    async def UpdateConnection(
        self, request: consumer_service_pb2.UpdateConnectionRequest, context: Context, actor: str
    ) -> operations_pb2.Operation:
        return await standard.update(
            self.deps,
            CONNECTIONS,
            request=request,
            resource=request.connection,
            mask=request.update_mask,
            actor=actor,
            method="UpdateConnection",
        )

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
            standard.mark_deleting(row)
            await records.flush(session)
            return await standard.conclude(
                session,
                kind=CONNECTIONS,
                row=row,
                verb="delete",
                method="DeleteConnection",
                request=request,
                actor=actor,
                progress="waiting for a worker to delete the endpoint",
            )

    @rpc.streaming
    async def WatchConnections(
        self, request: consumer_service_pb2.WatchConnectionsRequest, context: Context, actor: str
    ) -> AsyncIterator[consumer_service_pb2.WatchConnectionsResponse]:
        watcher = standard.watcher(
            self.deps, CONNECTIONS, parent=request.parent, filter_text=request.filter
        )
        async for response in watcher.responses(
            send_initial=request.send_initial,
            build=lambda event_type, message: consumer_service_pb2.WatchConnectionsResponse(
                type=event_type, connection=message, event_time=watches.now()
            ),
        ):
            yield response
