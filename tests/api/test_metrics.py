"""Prometheus metrics are served when LINKPLANE_METRICS_LISTEN is set."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime


async def test_metrics_endpoint_counts_rpcs(database_url, channel):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime = Runtime(
        Settings(listen="127.0.0.1:0", role=Role.API, metrics_listen=f"127.0.0.1:{port}"),
        database_url,
    )
    await runtime.start()
    try:
        from linkplane.v1 import account_service_pb2, account_service_pb2_grpc

        await account_service_pb2_grpc.AccountServiceStub(channel).ListAccounts(
            account_service_pb2.ListAccountsRequest(parent="projects/metrics")
        )
        url = f"http://127.0.0.1:{port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        text = body.decode()
        assert 'linkplane_rpc_total{code="OK",method="ListAccounts"}' in text
    finally:
        await runtime.stop()
