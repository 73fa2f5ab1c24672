"""The database going away and coming back, and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.v1 import account_service_pb2, account_service_pb2_grpc
from tests.api.conftest import details


class Proxy:
    """A TCP proxy to Postgres that a test can cut and restore: a real outage, on the wire."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.pipes):
            writer.close()
        await self.server.wait_closed()

    async def _handle(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.pipes |= {writer, up_writer}

        async def pump(src, dst):
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def test_database_outage_is_unavailable_and_recovers(database_url):
    url = make_url(database_url)
    if not url.host or url.host.startswith("/") or url.query.get("host"):
        pytest.skip("the database is on a unix socket; the outage test needs TCP")
    proxy = Proxy(url.host, url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    runtime = Runtime(
        Settings(listen="127.0.0.1:0", database_timeout_seconds=1.0, role=Role.API), proxied
    )
    await runtime.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
            stub = account_service_pb2_grpc.AccountServiceStub(channel)
            request = account_service_pb2.ListAccountsRequest(parent="projects/outage")
            await stub.ListAccounts(request)

            await proxy.cut()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListAccounts(request, timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert details(caught.value)["reason"] == "DATABASE_UNAVAILABLE"
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(50):
                status = (await health.Check(health_pb2.HealthCheckRequest())).status
                if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                await asyncio.sleep(0.2)
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            # Liveness (the probe that restarts pods) stays SERVING: a restart cannot help.
            liveness = health_pb2.HealthCheckRequest(service="liveness")
            alive = (await health.Check(liveness)).status
            assert alive == health_pb2.HealthCheckResponse.SERVING

            await proxy.start()  # same port: the database is back
            for _ in range(50):
                try:
                    await stub.ListAccounts(request, timeout=5)
                    break
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError("linkplane did not recover after the database came back")
    finally:
        await runtime.stop()
        with contextlib.suppress(Exception):
            await proxy.cut()


async def test_graceful_shutdown_drains_in_flight_calls(database_url):
    runtime = Runtime(
        Settings(listen="127.0.0.1:0", shutdown_grace_seconds=5.0, role=Role.API), database_url
    )
    await runtime.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
        accounts = account_service_pb2_grpc.AccountServiceStub(channel)
        from linkplane.v1 import provider_service_pb2, provider_service_pb2_grpc
        from tests.api.conftest import managed_service, register_accounts

        await register_accounts(accounts, "drain")
        provider = provider_service_pb2_grpc.ProviderServiceStub(channel)
        operation = await provider.PublishService(
            provider_service_pb2.PublishServiceRequest(
                parent="projects/drain", service=managed_service("drain")
            )
        )
        waiter = asyncio.ensure_future(
            operations_pb2_grpc.OperationsStub(channel).WaitOperation(
                operations_pb2.WaitOperationRequest(
                    name=operation.name, timeout=duration_pb2.Duration(seconds=1)
                )
            )
        )
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(runtime.stop())
        finished = await waiter  # the in-flight call completes instead of being cut off
        assert finished.name == operation.name
        await stopping
