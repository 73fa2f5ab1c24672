"""The AWS simulator for the packages that run reconcilers, and the networks they start from.

moto's state is process-global, so a package starts one simulator (package-scoped fixture) and
tests isolate by project and account. The simulator enforces AWS's throttling buckets and
delays, time-scaled; the server under test is told the same scale (`runtimes.worker_settings`),
exactly as `linkplane-server dev` does.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiobotocore.session import AioSession, get_session

from linkplane.sim import server as sim_server

PROVIDER = "111111111111"
CONSUMER = "222222222222"
OTHER_CONSUMER = "333333333333"
REGION = "us-east-1"
TIME_SCALE = 200.0
"""The scale of the packages that run reconcilers: fast, yet slow enough that AWS's delays and
throttling buckets still shape what linkplane sees."""

PLAIN_HTTP = False
"""`verify=` for a client of the simulator: it serves plain HTTP, so there is no certificate to
verify, and aiobotocore then skips loading the CA bundle into every client it creates (a few
percent of the suite's CPU, with a few hundred clients per run)."""

NETWORK_CIDRS = {PROVIDER: "10.1.0.0/16", CONSUMER: "10.2.0.0/16", OTHER_CONSUMER: "10.3.0.0/16"}


def running(time_scale: float = TIME_SCALE) -> Iterator[sim_server.SimHandle]:
    """A throttling simulator at `time_scale` for the fixture that yields from this."""
    handle = sim_server.start(time_scale=time_scale, throttling=True)
    try:
        yield handle
    finally:
        handle.stop()


def seed_networks(
    sim: sim_server.SimHandle, accounts: tuple[str, ...] = (PROVIDER, CONSUMER, OTHER_CONSUMER)
) -> dict[str, dict[str, Any]]:
    """A VPC with subnets (vpc_id, subnet_ids, ...) in REGION for each of `accounts`."""
    return {
        account: sim_server.seed_network(
            sim, account_id=account, region=REGION, cidr=NETWORK_CIDRS[account]
        )
        for account in accounts
    }


@functools.cache
def _session() -> AioSession:
    """One aiobotocore session for the process's clients of the simulator: it caches the
    service models, which a new session would parse again."""
    return get_session()


@contextlib.asynccontextmanager
async def acting_as(
    endpoint_url: str, account: str, service: str, region: str = REGION
) -> AsyncIterator[Any]:
    """A client of the simulator acting as `account` through STS AssumeRole into its
    `linkplane` role: AWS as a person outside linkplane changes it."""
    root = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    async with _session().create_client(
        "sts", region_name=region, endpoint_url=endpoint_url, verify=PLAIN_HTTP, **root
    ) as sts:
        creds = (
            await sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/linkplane", RoleSessionName="by-hand"
            )
        )["Credentials"]
    async with _session().create_client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        verify=PLAIN_HTTP,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ) as client:
        yield client
