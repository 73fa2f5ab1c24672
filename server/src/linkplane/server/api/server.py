"""Builds the grpc.aio server: linkplane services, Operations, IAMPolicy, health, reflection.

SERVICE_NAMES lists every service whose RPCs need a permission (api/authz.py); health and
reflection are the explicit exceptions (authz.EXEMPT_SERVICES).
"""

from __future__ import annotations

from typing import Any, Protocol

import grpc
from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from linkplane.server import telemetry
from linkplane.server.api import accounts, audit, boundary, consumer, iam, operations, provider, rpc
from linkplane.v1 import (
    account_service_pb2,
    account_service_pb2_grpc,
    audit_service_pb2,
    audit_service_pb2_grpc,
    consumer_service_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
)

SERVICE_NAMES = (
    provider_service_pb2.DESCRIPTOR.services_by_name["ProviderService"].full_name,
    consumer_service_pb2.DESCRIPTOR.services_by_name["ConsumerService"].full_name,
    account_service_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    operations_pb2.DESCRIPTOR.services_by_name["Operations"].full_name,
    iam_policy_pb2.DESCRIPTOR.services_by_name["IAMPolicy"].full_name,
)
LIVENESS = "liveness"
"""The health service name liveness probes ask for: SERVING while the process answers at all
(readiness asks for "" or a service name, which follow the database; set_serving)."""


class HealthStatus(Protocol):
    """What the process does with grpc_health's asyncio servicer (its stubs lack `aio`)."""

    async def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        """Report `status` for `service` to Check and Watch callers."""

    async def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for every service, for good."""


class _Health(health.aio.HealthServicer):  # type: ignore[misc,name-defined]  # no stub for aio
    """grpcio's asyncio health servicer, plus the `List` method its proto has since gained
    (grpcio's servicers leave it unimplemented; a sync stub would also bypass the boundary)."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: Any
    ) -> health_pb2.HealthListResponse:
        statuses: dict[str, Any] = self._server_status
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
            }
        )


def build(
    deps: rpc.Dependencies,
    listen: str,
    tls: tuple[bytes, bytes] | None = None,
    client_ca: bytes | None = None,
    *,
    reflection_enabled: bool = True,
) -> tuple[grpc.aio.Server, HealthStatus, int]:
    """The server (not started), its health servicer, and the bound port.

    `tls` is (private key, certificate chain) in PEM; without it the port is plaintext, as
    behind a TLS-terminating proxy or on loopback in dev mode. `client_ca` (PEM) makes the TLS
    handshake require a client certificate signed by it (mTLS; api/identity.py reads the
    principal from the verified certificate).
    """
    if client_ca is not None and tls is None:
        raise ValueError("TLS client authentication needs a server certificate and key")
    server = grpc.aio.server(
        interceptors=[*telemetry.server_interceptors(), boundary.Boundary(wire=deps.hub.wire)],
        options=[
            # Requests are small (a spec, a filter); 8 MiB refuses abuse early. Responses may
            # be a 1,000-resource page; 16 MiB bounds what one message can pin in memory.
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
            # Ping idle connections every 60 s and drop the ones that do not answer in 20 s,
            # so the stream slots of vanished watchers (api/limits.py) come back.
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            # Clients may keep connections alive with pings, even without calls, but no more
            # often than every 10 s (more is answered with GOAWAY).
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # `serve --processes N` runs N processes on one port (gRPC's default on Linux,
            # stated here because processgroup.py relies on it).
            ("grpc.so_reuseport", 1),
        ],
    )
    provider_service_pb2_grpc.add_ProviderServiceServicer_to_server(
        provider.ProviderServicer(deps), server
    )
    consumer_service_pb2_grpc.add_ConsumerServiceServicer_to_server(
        consumer.ConsumerServicer(deps), server
    )
    account_service_pb2_grpc.add_AccountServiceServicer_to_server(
        accounts.AccountServicer(deps), server
    )
    audit_service_pb2_grpc.add_AuditServiceServicer_to_server(audit.AuditServicer(deps), server)
    operations_pb2_grpc.add_OperationsServicer_to_server(
        operations.OperationsServicer(deps), server
    )
    iam_policy_pb2_grpc.add_IAMPolicyServicer_to_server(iam.IamPolicyServicer(deps), server)
    # The asyncio servicer: its handlers are coroutines the request boundary wraps like every
    # other (the thread-pool one answered malformed bytes UNKNOWN), and a Watch holds no thread.
    health_servicer = _Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection_enabled:
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
    if tls is not None:
        key, chain = tls
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
        port = server.add_secure_port(listen, credentials)
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return server, health_servicer, port


async def set_serving(health_servicer: HealthStatus, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    # Liveness is answered by the event loop itself, whatever the database does.
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, status)
