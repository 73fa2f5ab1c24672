"""The first run, as a user does it: `linkplane-server dev` in one process, `lpctl` in others.

The dev server runs as a real subprocess (its own embedded simulator, the test database), and
every `lpctl` call is a real subprocess too: what is checked is what a person or a script sees —
output, JSON shape, exit codes — including a graceful SIGTERM shutdown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.heavy(seconds=35)

DEV_STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dev_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    address = f"127.0.0.1:{_free_port()}"
    log_path = tmp_path_factory.mktemp("dev") / "dev.log"
    env = {**os.environ, "LINKPLANE_DATABASE_URL": database_url}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "linkplane.server.cli",
                "dev",
                "--listen",
                address,
                "--time-scale",
                "100",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + DEV_STARTUP_SECONDS
    while "Stop with Ctrl-C" not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"dev server did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    try:
        yield address
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        assert code == 0, f"dev server exited {code} on SIGTERM:\n{log_path.read_text()}"


def lpctl(address: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linkplane.client.cli", "--address", address, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


def test_demo_walks_through_privatelink_end_to_end(dev_server):
    result = lpctl(dev_server, "demo", "--step-timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("PENDING_ACCEPTANCE", "AVAILABLE", "vpce.amazonaws.com", "demo complete"):
        assert step in result.stdout, (step, result.stdout)


def test_accounts_are_pre_registered_with_their_networks(dev_server):
    result = lpctl(dev_server, "--output", "json", "accounts", "list")
    assert result.returncode == 0, result.stderr
    accounts = json.loads(result.stdout)
    by_id = {a["awsAccountId"]: a for a in accounts}
    assert {"111111111111", "222222222222"} <= set(by_id)
    assert by_id["222222222222"]["labels"]["dev-vpc-id"].startswith("vpc-")


def test_errors_are_one_clear_line_and_an_exit_code(dev_server):
    missing = lpctl(dev_server, "services", "get", "nope")
    assert missing.returncode == 3
    assert "Traceback" not in missing.stderr
    assert "not found" in missing.stderr.lower()

    invalid = lpctl(
        dev_server,
        "services",
        "publish",
        "bad",
        "--account",
        "111111111111",
        "--region",
        "moon-1",
        "--subnet",
        "subnet-0123456789abcdef0",
        "--listener",
        "443/tcp",
    )
    assert invalid.returncode == 2
    assert "service.region" in invalid.stderr
    assert "Traceback" not in invalid.stderr


def buf_curl(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    buf = os.path.join(os.path.dirname(sys.executable), "buf")
    return subprocess.run(
        [buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_generic_client_needs_no_proto_files(dev_server):
    """`buf curl` with reflection: health, the service list, a call, and a field violation."""
    base = f"http://{dev_server}"
    health = buf_curl(dev_server, f"{base}/grpc.health.v1.Health/Check")
    assert json.loads(health.stdout)["status"] == "SERVING"
    listed = buf_curl(dev_server, "--list-services", base).stdout.split()
    assert {
        "linkplane.v1.ProviderService",
        "linkplane.v1.ConsumerService",
        "linkplane.v1.AccountService",
        "google.longrunning.Operations",
    } <= set(listed)
    page = buf_curl(
        dev_server,
        "-d",
        '{"parent": "projects/default", "page_size": 1}',
        f"{base}/linkplane.v1.AccountService/ListAccounts",
    )
    body = json.loads(page.stdout)
    assert len(body["accounts"]) == 1
    assert body["nextPageToken"]
    invalid = buf_curl(
        dev_server,
        "-d",
        '{"parent": "projects/default", "service": {"region": "x"}}',
        f"{base}/linkplane.v1.ProviderService/PublishService",
    )
    assert invalid.returncode != 0
    error = json.loads(invalid.stderr)
    assert error["code"] == "invalid_argument"
    assert "service.provider_account" in error["message"]
