"""lpctl as kubectl/gcloud users expect it (issue 11): `-o` before or after the subcommand, ids
never cut in tables, `services principals add|remove`, `connections accept|reject
--all-pending [--from]`, a plain word when `connections create --wait` ends at
PENDING_ACCEPTANCE, and the documented exit code of a `--wait` that timed out."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import grpc
import pytest
import yaml
from typer.testing import CliRunner

from linkplane.client import cli
from linkplane.client.cli import hoist_output
from linkplane.server.runtime import Runtime
from linkplane.v1 import connection_pb2, service_pb2
from tests.client.linkplane_fake import Backend, FakeServer
from tests.client.test_cli import lpctl

SERVICE = "projects/default/services/payments"
SERVICE_NAME = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"


def run(server: FakeServer, *args: str) -> tuple[int, str, str]:
    """lpctl in-process (CliRunner) against the fake; returns (exit code, stdout, stderr)."""
    runner = CliRunner()
    result = runner.invoke(cli.app, ["--address", server.address, *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# -- -o/--output anywhere -------------------------------------------------------------------


async def _lpctl_async(address: str, *args: str) -> tuple[int, str, str]:
    # The real server runs on this test's event loop, so lpctl must not block it.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINKPLANE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "linkplane.client.cli",
        "--address",
        address,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_output_flag_before_or_after_the_subcommand_on_the_real_server(
    server: Runtime, project: str
) -> None:
    address = f"127.0.0.1:{server.port}"
    for args in (
        ["-p", project, "services", "list", "-o", "json"],
        ["-o", "json", "-p", project, "services", "list"],
        ["-p", project, "services", "list", "--output=json"],
    ):
        code, stdout, stderr = await _lpctl_async(address, *args)
        assert code == 0, stderr
        assert json.loads(stdout) == []
    # A table (empty: "no results" on stderr, nothing on stdout) proves the late -o was read.
    code, stdout, stderr = await _lpctl_async(address, "-p", project, "services", "list", "-otable")
    assert code == 0, stderr
    assert stdout == ""
    assert "no results" in stderr


@pytest.mark.parametrize("position", ["before", "after"])
def test_each_format_in_either_position(
    fake_server: FakeServer, backend: Backend, position: str
) -> None:
    def listing(fmt: str) -> str:
        args = ["-o", fmt, "accounts", "list"]
        if position == "after":
            args = ["accounts", "list", "-o", fmt]
        code, stdout, stderr = run(fake_server, *args)
        assert code == 0, stderr
        return stdout

    as_json = json.loads(listing("json"))
    assert [a["awsAccountId"] for a in as_json] == ["111111111111", "222222222222"]
    as_yaml = listing("yaml")
    assert not as_yaml.lstrip().startswith("[")
    assert yaml.safe_load(as_yaml) == as_json
    assert listing("table").split()[0] == "ACCOUNT"


def test_hoisting_leaves_arguments_after_double_dash_alone() -> None:
    assert hoist_output(["services", "get", "x", "-o", "yaml"]) == [
        "-o",
        "yaml",
        "services",
        "get",
        "x",
    ]
    assert hoist_output(["iam", "test", "--", "-o", "x"]) == ["iam", "test", "--", "-o", "x"]


# -- ids in tables ---------------------------------------------------------------------------


def test_ids_are_never_cut_in_a_narrow_table(fake_server: FakeServer, backend: Backend) -> None:
    long_id = "orders-to-payments-in-the-eu-west-production-cell-7"
    fake_server.call(
        lambda: backend.add_service(
            f"projects/default/services/{long_id}",
            state=service_pb2.Service.STATE_ACTIVE,
            region="eu-west-1",
            provider_account="projects/default/accounts/111111111111",
            service_name=SERVICE_NAME,
            display_name="A service whose display name is long enough to need wrapping",
        )
    )
    result = lpctl(fake_server, "-o", "table", "services", "list", env={"COLUMNS": "60"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for identifier in (long_id, SERVICE_NAME, "111111111111"):
        assert any(identifier in line for line in lines), (identifier, result.stdout)
    assert "…" not in result.stdout


# -- services principals add|remove -----------------------------------------------------------


def test_principals_add_and_remove_keep_the_others(
    fake_server: FakeServer, backend: Backend
) -> None:
    fake_server.call(lambda: backend.add_service(SERVICE, allowed_principals=["111111111111"]))

    def allowed() -> list[str]:
        return list(fake_server.call(lambda: list(backend.services[SERVICE].allowed_principals)))

    code, stdout, stderr = run(
        fake_server, "services", "principals", "add", "payments", "333333333333", "--wait"
    )
    assert code == 0, stderr
    assert allowed() == ["111111111111", "333333333333"]
    assert backend.calls["UpdateService"][-1].update_mask.paths == ["allowed_principals"]
    assert json.loads(stdout)["allowedPrincipals"] == ["111111111111", "333333333333"]

    updates = len(backend.calls["UpdateService"])
    code, _, stderr = run(fake_server, "services", "principals", "add", "payments", "333333333333")
    assert code == 0, stderr
    assert "nothing to do" in stderr
    assert len(backend.calls["UpdateService"]) == updates  # no needless write

    code, _, stderr = run(fake_server, "services", "principals", "remove", "payments", "999")
    assert code == 3
    assert "999 not allowed" in stderr

    code, _, stderr = run(
        fake_server, "services", "principals", "remove", "payments", "111111111111", "--wait"
    )
    assert code == 0, stderr
    assert allowed() == ["333333333333"]


def test_principals_add_rereads_and_retries_after_a_concurrent_change(
    fake_server: FakeServer, backend: Backend
) -> None:
    fake_server.call(lambda: backend.add_service(SERVICE, allowed_principals=["111111111111"]))
    backend.fail("UpdateService", grpc.StatusCode.ABORTED)  # someone else wrote first
    code, _, stderr = run(
        fake_server, "services", "principals", "add", "payments", "333333333333", "--wait"
    )
    assert code == 0, stderr
    writes = backend.calls["UpdateService"]
    assert len(writes) == 2  # the refused write, then one after re-reading
    assert all(w.service.etag for w in writes)  # every write is conditional on what was read
    assert list(backend.services[SERVICE].allowed_principals) == ["111111111111", "333333333333"]


def test_allow_help_says_it_replaces(fake_server: FakeServer) -> None:
    code, stdout, _ = run(fake_server, "services", "update", "-h")
    assert code == 0
    assert "REPLACES" in " ".join(stdout.split())
    assert "principals add|remove" in " ".join(stdout.split())


# -- connections accept|reject --all-pending ---------------------------------------------------


def _requests(fake_server: FakeServer, backend: Backend) -> None:
    def setup() -> None:
        backend.add_service(SERVICE)
        for index, (account, state) in enumerate(
            [
                ("222222222222", connection_pb2.Connection.STATE_PENDING_ACCEPTANCE),
                ("222222222222", connection_pb2.Connection.STATE_PENDING_ACCEPTANCE),
                ("333333333333", connection_pb2.Connection.STATE_PENDING_ACCEPTANCE),
                ("222222222222", connection_pb2.Connection.STATE_AVAILABLE),
            ]
        ):
            name = f"projects/default/connections/c{index}"
            backend.connections[name] = connection_pb2.Connection(
                name=name,
                service=SERVICE,
                consumer_account=f"projects/default/accounts/{account}",
                endpoint_id=f"vpce-{index:017d}",
                state=state,
                etag="1",
            )

    fake_server.call(setup)


def _states(fake_server: FakeServer, backend: Backend) -> dict[str, str]:
    def read() -> dict[str, str]:
        return {
            c.endpoint_id: connection_pb2.Connection.State.Name(c.state).removeprefix("STATE_")
            for c in backend.connections.values()
        }

    result: dict[str, str] = fake_server.call(read)
    return result


def test_accept_all_pending_from_one_account(fake_server: FakeServer, backend: Backend) -> None:
    _requests(fake_server, backend)
    code, _, stderr = run(
        fake_server, "services", "connections", "accept", "payments",
        "--all-pending", "--from", "222222222222", "--wait",
    )  # fmt: skip
    assert code == 0, stderr
    assert backend.calls["AcceptServiceConnections"][-1].endpoint_ids == [
        "vpce-00000000000000000",
        "vpce-00000000000000001",
    ]
    assert _states(fake_server, backend) == {
        "vpce-00000000000000000": "AVAILABLE",
        "vpce-00000000000000001": "AVAILABLE",
        "vpce-00000000000000002": "PENDING_ACCEPTANCE",  # another account
        "vpce-00000000000000003": "AVAILABLE",
    }


def test_reject_all_pending_then_nothing_left(fake_server: FakeServer, backend: Backend) -> None:
    _requests(fake_server, backend)
    code, _, stderr = run(
        fake_server, "services", "connections", "reject", "payments", "--all-pending", "--wait"
    )
    assert code == 0, stderr
    assert list(backend.calls["RejectServiceConnections"][-1].endpoint_ids) == [
        f"vpce-{i:017d}" for i in range(3)
    ]
    code, _, stderr = run(
        fake_server, "services", "connections", "reject", "payments", "--all-pending"
    )
    assert code == 0, stderr
    assert "no pending connection requests" in stderr
    assert len(backend.calls["RejectServiceConnections"]) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["vpce-00000000000000000", "--all-pending"],
        ["--from", "222222222222"],
        ["--all-pending", "--from", "2222"],
        [],
    ],
    ids=["ids-and-all", "from-without-all", "bad-account", "nothing"],
)
def test_decision_selection_usage_errors(
    fake_server: FakeServer, backend: Backend, args: list[str]
) -> None:
    _requests(fake_server, backend)
    code, _, _ = run(fake_server, "services", "connections", "accept", "payments", *args)
    assert code == 2
    assert not backend.calls["AcceptServiceConnections"]


# -- --wait endings ----------------------------------------------------------------------------


def test_create_wait_that_ends_pending_acceptance_says_the_provider_must_accept(
    fake_server: FakeServer, backend: Backend
) -> None:
    fake_server.call(lambda: backend.add_service(SERVICE))  # manual acceptance
    result = lpctl(
        fake_server, "connections", "create", "orders",
        "--account", "222222222222", "--region", "us-east-1", "--service", "payments",
        "--vpc", "vpc-0abc", "--subnet", "subnet-c1", "--wait",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    connection = json.loads(result.stdout)
    assert connection["state"] == "STATE_PENDING_ACCEPTANCE"
    message = " ".join(result.stderr.split())
    assert "PENDING_ACCEPTANCE" in message
    assert "until the service's provider accepts it" in message
    assert f"lpctl services connections accept payments {connection['endpointId']}" in message


def test_create_wait_that_ends_available_says_nothing_more(
    fake_server: FakeServer, backend: Backend
) -> None:
    automatic = service_pb2.AcceptancePolicy(mode=service_pb2.AcceptancePolicy.MODE_AUTOMATIC)
    fake_server.call(lambda: backend.add_service(SERVICE, acceptance_policy=automatic))
    result = lpctl(
        fake_server, "connections", "create", "orders",
        "--account", "222222222222", "--region", "us-east-1", "--service", "payments",
        "--vpc", "vpc-0abc", "--subnet", "subnet-c1", "--wait",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "STATE_AVAILABLE"
    assert "PENDING_ACCEPTANCE" not in result.stderr


def test_wait_timeout_exits_6_and_says_how_to_follow(
    fake_server: FakeServer, backend: Backend
) -> None:
    started = lpctl(
        fake_server, "-o", "table", "services", "publish", "slow",
        "--account", "111111111111", "--region", "us-east-1",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    name = started.stdout.strip()
    fake_server.call(
        lambda: backend.operations[name].steps.extend([("still working", lambda: None)] * 10**5)
    )
    result = lpctl(fake_server, "operations", "wait", name, "--wait-timeout", "0.5")
    assert result.returncode == 6, result.stderr
    assert f"lpctl operations wait {name}" in " ".join(result.stderr.split())


# -- shell completion of resource ids ----------------------------------------------------------


def _complete(address: str, words: str) -> subprocess.CompletedProcess[str]:
    """What bash completion gets for the last word of `words` (typer's bash protocol)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINKPLANE_")}
    line = f"lpctl --address {address} {words}"
    environment.update(
        {
            "_LPCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(line.split()) - 1),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "linkplane.client.cli"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_completion_of_service_and_connection_ids(
    fake_server: FakeServer, backend: Backend
) -> None:
    def setup() -> None:
        for name in ("payments", "payroll", "orders"):
            backend.add_service(f"projects/default/services/{name}")
        backend.connections["projects/default/connections/pay-link"] = connection_pb2.Connection(
            name="projects/default/connections/pay-link", etag="1"
        )

    fake_server.call(setup)
    result = _complete(fake_server.address, "services get pay")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["payments", "payroll"]
    result = _complete(fake_server.address, "connections create x --service or")
    assert result.stdout.split() == ["orders"]
    result = _complete(fake_server.address, "connections delete p")
    assert result.stdout.split() == ["pay-link"]


def test_completion_against_an_unreachable_server_suggests_nothing() -> None:
    result = _complete("127.0.0.1:1", "services get pay")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
