"""What the benchmarks share: a free loopback port, a process's CPU time, and the requests
that set up a fleet (register accounts, a service that auto-accepts its consumers, a
connection from a consumer VPC)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from linkplane.v1 import account_pb2, account_service_pb2, connection_pb2, service_pb2

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def register(accounts_api: Any, parent: str, account_ids: list[str]) -> None:
    """Register each AWS account in the project, with the simulator's role for it."""
    for account in account_ids:
        await accounts_api.RegisterAccount(
            account_service_pb2.RegisterAccountRequest(
                parent=parent,
                account_id=account,
                account=account_pb2.Account(role_arn=f"arn:aws:iam::{account}:role/linkplane"),
            )
        )


def auto_accepting_service(
    parent: str, provider: str, provider_net: dict[str, Any], consumers: list[str]
) -> service_pb2.Service:
    """A service behind a managed NLB that allows and accepts every one of `consumers`."""
    return service_pb2.Service(
        provider_account=f"{parent}/accounts/{provider}",
        region=REGION,
        load_balancer=service_pb2.LoadBalancer(
            managed=service_pb2.ManagedLoadBalancer(
                subnet_ids=provider_net["subnet_ids"],
                listeners=[service_pb2.Listener(port=443)],
                targets=[service_pb2.Target(id="10.1.0.10")],
            )
        ),
        allowed_principals=consumers,
        acceptance_policy=service_pb2.AcceptancePolicy(
            accept_rules=[service_pb2.AcceptRule(principal=a) for a in consumers]
        ),
    )


def connection(
    parent: str, service_id: str, account: str, network: dict[str, Any]
) -> connection_pb2.Connection:
    """A connection from `account`'s VPC `network` to the project's service `service_id`."""
    return connection_pb2.Connection(
        service=f"{parent}/services/{service_id}",
        consumer_account=f"{parent}/accounts/{account}",
        region=REGION,
        vpc_id=network["vpc_id"],
        subnet_ids=network["subnet_ids"],
    )
