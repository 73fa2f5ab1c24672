"""CheckAccount and `lpctl accounts check`, against a server whose AWS is the simulator.

The server runs like `linkplane-server dev` does (the simulator over HTTP, assumed roles), but as
an API-only process: CheckAccount calls AWS from the API itself. The simulator's deny list takes
one action away from the consumer account's role, and exactly that action must come back
denied; lpctl, run as a subprocess, prints it and exits 8.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from linkplane.server.aws import permissions
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from linkplane.sim import server as sim_server
from linkplane.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from tests.deploy import aws_actions
from tests.deploy import test_iam_policy as policies
from tests.support import runtimes

CONSUMER = "222222222222"
PROVIDER = "111111111111"
ROLE = "linkplane"
Check = account_service_pb2.PermissionCheck


@pytest.fixture(scope="module")
def sim() -> Iterator[sim_server.SimHandle]:
    handle = sim_server.start(time_scale=50.0, throttling=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
async def plane(sim: sim_server.SimHandle, database_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(
        listen="127.0.0.1:0",
        role=Role.API,
        aws_endpoint_url=sim.endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        aws_time_scale=50.0,
        shutdown_grace_seconds=1.0,
    )
    async with runtimes.running(settings, database_url) as runtime:
        yield runtime


@pytest.fixture
async def stub(plane: Runtime) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.port}") as channel:
        yield account_service_pb2_grpc.AccountServiceStub(channel)


@pytest.fixture(autouse=True)
def _no_denials(sim: sim_server.SimHandle) -> Iterator[None]:
    yield
    with sim.world.lock:
        sim.world.denials.clear()


async def _register(stub: Any, project: str, account_id: str, **fields: Any) -> str:
    account = account_pb2.Account(role_arn=f"arn:aws:iam::{account_id}:role/{ROLE}", **fields)
    await stub.RegisterAccount(
        account_service_pb2.RegisterAccountRequest(
            parent=f"projects/{project}", account_id=account_id, account=account
        )
    )
    return f"projects/{project}/accounts/{account_id}"


def _results(response: account_service_pb2.CheckAccountResponse) -> dict[str, str]:
    return {c.action: Check.Result.Name(c.result) for c in response.checks}


def test_the_checked_actions_are_the_ones_the_code_calls() -> None:
    """Derived from one place: the same scan and policies tests/deploy compares."""
    scanned = {s.iam_action for s in aws_actions.scan().calls} - {"sts:AssumeRole"}
    assert {p.iam_action for p in permissions.PERMISSIONS} == scanned
    assert len(permissions.PERMISSIONS) == len(scanned), "an action is listed twice"
    for variant in permissions.Variant:
        granted = policies.policy_actions(policies.load(f"{variant}.json"))
        expected = granted - policies.PERMISSION_ONLY[variant]
        assert {p.iam_action for p in permissions.selected([variant])} == expected, variant


async def test_every_action_is_allowed_for_the_consumer_account(stub, project):
    name = await _register(stub, project, CONSUMER)
    response = await stub.CheckAccount(
        account_service_pb2.CheckAccountRequest(
            name=name, usage=account_service_pb2.CheckAccountRequest.USAGE_CONSUMER
        )
    )
    results = _results(response)
    expected = {p.iam_action for p in permissions.selected([permissions.Variant.CONSUMER])}
    assert set(results) == expected | {"sts:AssumeRole"}
    assert set(results.values()) == {"RESULT_ALLOWED"}, response
    assert response.checks[0].action == "sts:AssumeRole"
    assert response.region == "us-east-1"
    assert response.caller_arn.startswith(f"arn:aws:sts::{CONSUMER}:assumed-role/{ROLE}/")


async def test_both_variants_leave_only_elbv2_writes_unverified(stub, project):
    name = await _register(stub, project, PROVIDER)
    response = await stub.CheckAccount(account_service_pb2.CheckAccountRequest(name=name))
    results = _results(response)
    assert len(results) == len(permissions.PERMISSIONS) + 1
    unverified = {a for a, r in results.items() if r == "RESULT_UNVERIFIED"}
    assert unverified == {
        p.iam_action for p in permissions.PERMISSIONS if p.method is permissions.Method.NONE
    }
    assert all(a.startswith("elasticloadbalancing:") for a in unverified)
    assert {r for a, r in results.items() if a not in unverified} == {"RESULT_ALLOWED"}


async def test_the_denied_action_is_the_only_one_reported(sim, stub, project):
    name = await _register(stub, project, CONSUMER)
    sim.deny(CONSUMER, ROLE, ["ec2:CreateVpcEndpoint"])
    response = await stub.CheckAccount(account_service_pb2.CheckAccountRequest(name=name))
    results = _results(response)
    not_allowed = {
        a: r for a, r in results.items() if r not in {"RESULT_ALLOWED", "RESULT_UNVERIFIED"}
    }
    assert not_allowed == {"ec2:CreateVpcEndpoint": "RESULT_DENIED"}
    (denied,) = [c for c in response.checks if c.action == "ec2:CreateVpcEndpoint"]
    assert denied.message.startswith("UnauthorizedOperation:")


async def test_region_defaults_to_the_first_allowed_region(stub, project):
    name = await _register(stub, project, CONSUMER, allowed_regions=["eu-west-1", "us-east-1"])
    response = await stub.CheckAccount(account_service_pb2.CheckAccountRequest(name=name))
    assert response.region == "eu-west-1"


async def test_a_role_that_cannot_be_assumed_is_reported_not_raised(sim, stub, project):
    # A role of its own, so no earlier test's assumed credentials are reused.
    account = account_pb2.Account(role_arn=f"arn:aws:iam::{CONSUMER}:role/{project}")
    await stub.RegisterAccount(
        account_service_pb2.RegisterAccountRequest(
            parent=f"projects/{project}", account_id=CONSUMER, account=account
        )
    )
    sim.set_faults({"AssumeRole": {"internal_error_rate": 1.0}})
    try:
        response = await stub.CheckAccount(
            account_service_pb2.CheckAccountRequest(
                name=f"projects/{project}/accounts/{CONSUMER}",
                usage=account_service_pb2.CheckAccountRequest.USAGE_CONSUMER,
            )
        )
    finally:
        sim.set_faults({})
    first, *rest = response.checks
    assert (first.action, Check.Result.Name(first.result)) == ("sts:AssumeRole", "RESULT_ERROR")
    assert "InternalError" in first.message
    assert response.caller_arn == ""
    assert rest and {Check.Result.Name(c.result) for c in rest} == {"RESULT_ERROR"}


@pytest.mark.parametrize(
    ("region", "allowed", "fragment"),
    [("mars-1", [], "AWS Region"), ("us-west-2", ["us-east-1"], "allowed_regions")],
)
async def test_bad_region_is_invalid_argument(stub, project, region, allowed, fragment):
    name = await _register(stub, project, CONSUMER, allowed_regions=allowed)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CheckAccount(account_service_pb2.CheckAccountRequest(name=name, region=region))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    assert fragment in caught.value.details()
    assert "region" in str(status)


async def test_unknown_account_is_not_found(stub, project):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CheckAccount(
            account_service_pb2.CheckAccountRequest(name=f"projects/{project}/accounts/{CONSUMER}")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def _lpctl(plane: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    """lpctl as a subprocess, waited for in a thread: the server shares this event loop."""
    return await asyncio.to_thread(_run_lpctl, plane.port, *args)


def _run_lpctl(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINKPLANE_")}
    environment.update({"LINKPLANE_ADDRESS": f"127.0.0.1:{port}", "COLUMNS": "200"})
    return subprocess.run(
        [sys.executable, "-m", "linkplane.client.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


async def test_lpctl_prints_the_denied_action_and_exits_non_zero(sim, stub, plane, project):
    await _register(stub, project, CONSUMER)
    allowed = await _lpctl(
        plane, "-o", "table", "--project", project, "accounts", "check", CONSUMER
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "ec2:CreateVpcEndpoint" in allowed.stdout
    assert "DENIED" not in allowed.stdout

    sim.deny(CONSUMER, ROLE, ["ec2:CreateVpcEndpoint"])
    # As the issue writes it: the project (and the output format) after the subcommand.
    denied = await _lpctl(plane, "accounts", "check", CONSUMER, "--project", project, "-o", "table")
    assert denied.returncode == 8, (denied.stdout, denied.stderr)
    rows = [line.split() for line in denied.stdout.splitlines()]
    assert ["ec2:CreateVpcEndpoint", "DENIED"] in [row[:2] for row in rows]
    assert [row[0] for row in rows if row[1:2] == ["DENIED"]] == ["ec2:CreateVpcEndpoint"]
    assert "denied: ec2:CreateVpcEndpoint" in denied.stderr
