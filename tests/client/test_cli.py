"""lpctl as a user runs it: a subprocess against the fake server, checking output shapes,
exit codes and that errors are one clear line (plus field violations), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from linkplane.client import cli
from tests.client.linkplane_fake import Backend, FakeServer


def lpctl(
    server: FakeServer, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINKPLANE_")}
    environment.update({"LINKPLANE_ADDRESS": server.address, "COLUMNS": "200"})
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "linkplane.client.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_accounts_list_json_shape(fake_server: FakeServer, backend: Backend) -> None:
    result = lpctl(fake_server, "accounts", "list")  # piped: JSON by default
    assert result.returncode == 0, result.stderr
    accounts = json.loads(result.stdout)
    assert [a["awsAccountId"] for a in accounts] == ["111111111111", "222222222222"]
    assert accounts[0]["labels"]["dev-vpc-id"] == "vpc-provider"


def test_publish_wait_then_table_list(fake_server: FakeServer, backend: Backend) -> None:
    result = lpctl(
        fake_server,
        "services", "publish", "payments",
        "--account", "111111111111", "--region", "us-east-1",
        "--subnet", "subnet-a", "--subnet", "subnet-b",
        "--listener", "443/tcp", "--target", "10.0.1.10",
        "--accept", "arn:aws:iam::222222222222:root:5", "--mode", "manual",
        "--label", "team=payments", "--wait",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)
    assert service["state"] == "STATE_ACTIVE"
    assert service["providerAccount"] == "projects/default/accounts/111111111111"
    rule = service["acceptancePolicy"]["acceptRules"][0]
    assert rule == {"principal": "arn:aws:iam::222222222222:root", "connectionLimit": 5}
    assert "creating the endpoint service" in result.stderr  # the progress display
    table = lpctl(fake_server, "-o", "table", "services", "list")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "STATE", "REGION"]
    assert row.split()[:4] == ["payments", "ACTIVE", "us-east-1", "111111111111"]


def test_mutation_without_wait_prints_the_operation(
    fake_server: FakeServer, backend: Backend
) -> None:
    result = lpctl(
        fake_server, "-o", "table", "services", "publish", "quick",
        "--account", "111111111111", "--region", "us-east-1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    name = result.stdout.strip()
    assert name.startswith("operations/")
    waited = lpctl(fake_server, "operations", "wait", name)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["name"] == "projects/default/services/quick"


def test_not_found_exit_code_and_one_line(fake_server: FakeServer, backend: Backend) -> None:
    result = lpctl(fake_server, "services", "get", "nope")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: NOT_FOUND: service 'projects/default/services/nope' not found [SERVICE_NOT_FOUND]"
    ]


def test_invalid_argument_prints_field_violations(
    fake_server: FakeServer, backend: Backend
) -> None:
    result = lpctl(fake_server, "services", "publish", "payments")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: INVALID_ARGUMENT: invalid PublishServiceRequest")
    assert "  service.provider_account: is required" in lines
    assert "  service.region: is required" in lines

    bad_id = lpctl(fake_server, "services", "publish", "Bad_Id")
    assert bad_id.returncode == 2
    assert bad_id.stderr.strip().splitlines()[1:] == [
        "  service_id: must match ^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
    ]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["accounts", "register", "111111111111"], 4),
        (["services", "list", "--filter", "bogus ~ 1"], 2),
        (["services", "publish", "x", "--listener", "http"], 2),
        (["operations", "get", "missing"], 3),
    ],
)
def test_exit_codes(fake_server: FakeServer, backend: Backend, args: list[str], code: int) -> None:
    result = lpctl(fake_server, *args)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_exits_6(fake_server: FakeServer) -> None:
    result = lpctl(
        fake_server, "--timeout", "1", "accounts", "list", env={"LINKPLANE_ADDRESS": "127.0.0.1:1"}
    )
    assert result.returncode == 6
    assert result.stderr.startswith("error: ")


def test_profile_file(fake_server: FakeServer, backend: Backend, tmp_path) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[profiles.dev]\naddress = "{fake_server.address}"\nproject = "other"\n')
    backend.register("other", "555555555555", {})
    result = lpctl(
        fake_server, "--profile", "dev", "accounts", "get", "555555555555",
        env={"LINKPLANE_ADDRESS": "", "LINKPLANE_CONFIG": str(profiles)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "projects/other/accounts/555555555555"


def test_yaml_output(fake_server: FakeServer, backend: Backend) -> None:
    result = lpctl(fake_server, "-o", "yaml", "accounts", "get", "222222222222")
    assert result.returncode == 0, result.stderr
    assert "awsAccountId: '222222222222'" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["services"],
        ["services", "publish"],
        ["services", "connections", "accept"],
        ["connections", "create"],
        ["accounts", "register"],
        ["operations", "wait"],
        ["demo"],
    ],
)
def test_help_says_what_and_shows_an_example(command: list[str]) -> None:
    # In-process (the same typer app lpctl runs) because help needs no server and a
    # subprocess per command would dominate the suite's run time.
    result = CliRunner().invoke(cli.app, [*command, "--help"], prog_name="lpctl")
    assert result.exit_code == 0
    assert "Usage: lpctl" in result.output
    if command and command[-1] not in {"services"}:
        assert "Example: lpctl" in result.output


def test_module_entry_point_help(fake_server: FakeServer) -> None:
    result = lpctl(fake_server, "--help")
    assert result.returncode == 0
    assert "Usage: lpctl" in result.stdout


def test_demo_walkthrough(fake_server: FakeServer, backend: Backend) -> None:
    result = lpctl(fake_server, "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "reusing it" in out
    assert "PENDING_ACCEPTANCE" in out
    assert "connection is AVAILABLE" in out
    assert "DNS  vpce-" in out
    assert "IP   10.1.0.10" in out
    assert "demo complete" in out
    assert backend.services == {}, "the demo tears down"
    assert backend.connections == {}
    assert backend.calls["DeleteService"][0].force
