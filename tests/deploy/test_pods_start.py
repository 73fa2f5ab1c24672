"""The rendered pods run: each container's command, with the environment Kubernetes would give
it (ConfigMap, Secret references, literal values), starts, and answers its probes.

No cluster here, so the test plays kubelet: it builds each container's environment from the
rendered `small` overlay and a stand-in Secret, runs the container's command from this
environment's bin directory, runs the migration Job first on a fresh database of its own (so
its workers see no other test's resources), then checks the probes the manifests declare (gRPC
health on the API, HTTP /metrics on the worker) and a SIGTERM shutdown within the pod's
termination grace period. Only the listen ports are changed, to free ones. Run as root (as
CI runs), every container also gets a read-only root filesystem with /tmp writable, as the
pods' securityContext and emptyDir say.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from scripts import render_kustomize
from tests.support import databases

pytestmark = pytest.mark.heavy(seconds=30)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTUP_SECONDS = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def container_env(
    document: dict[str, Any], config: dict[str, str], secret: dict[str, str]
) -> dict[str, str]:
    """The environment Kubernetes gives the (single) container of a workload."""
    (container,) = document["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}
        env.update(config)
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "linkplane"
        if ref["key"] in secret:
            env[entry["name"]] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"{entry['name']}: the Secret must have {ref['key']}"
    return env


def command(document: dict[str, Any]) -> list[str]:
    (container,) = document["spec"]["template"]["spec"]["containers"]
    executable = BIN / container["command"][0]
    assert executable.exists(), f"{executable}: the image's command is not installed"
    return [str(executable), *container.get("command", [])[1:], *container.get("args", [])]


@pytest.fixture(scope="module")
def fresh_database(database_server: databases.DatabaseServer) -> Iterator[str]:
    """An empty database on the test server (not migrated: the Job does that)."""
    with database_server.empty("linkplane_deploy") as url:
        yield url


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict[str, Any]]:
    documents = render_kustomize.build(ROOT / "deploy" / "kubernetes" / "overlays" / "small")
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


# readOnlyRootFilesystem with an emptyDir on /tmp, played with a private mount namespace in
# which every mount is read-only and /tmp is a fresh tmpfs. Needs root and unshare (CI has
# both); elsewhere the pods run on the normal filesystem.
READ_ONLY_ROOT = os.geteuid() == 0 and shutil.which("unshare") and shutil.which("findmnt")
# $1: the directories under /tmp the pod's command needs (this checkout and its virtualenv,
# when CI clones there), kept visible through /tmp's tmpfs by moving bind mounts of them in.
READ_ONLY_WRAPPER = """
keep="$1"; shift
mount -t tmpfs tmpfs /mnt
i=0; for p in $keep; do mkdir /mnt/$i; mount --rbind "$p" /mnt/$i; i=$((i+1)); done
mount -t tmpfs -o size=64m tmpfs /tmp
i=0; for p in $keep; do mkdir -p "$p"; mount --move /mnt/$i "$p"; i=$((i+1)); done
for m in $(findmnt -rn -o TARGET | sort -r); do
  [ "$m" = /tmp ] || mount -o remount,bind,ro "$m" 2>/dev/null
done
if touch /rootfs-write-check 2>/dev/null; then echo "root filesystem is writable" >&2; exit 97; fi
if ! touch /tmp/tmp-write-check; then echo "/tmp is not writable" >&2; exit 98; fi
exec "$@"
"""


def pod_command(args: list[str], database_url: str) -> list[str]:
    if not READ_ONLY_ROOT:
        return args
    tmp = Path("/tmp").resolve()
    needed = {ROOT.resolve(), Path(sys.prefix).resolve()}
    # An embedded Postgres (no LINKPLANE_TEST_DATABASE_URL) listens on a socket in its
    # data directory, which tempfile puts under /tmp.
    socket_dir = make_url(database_url).query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        needed.add(Path(socket_dir).resolve())
    keep = sorted(str(p) for p in needed if p.is_relative_to(tmp) and p != tmp)
    # A kept directory inside another kept one comes along with it.
    keep = [p for p in keep if not any(p != q and p.startswith(q + "/") for q in keep)]
    wrapper = ["sh", "-c", READ_ONLY_WRAPPER, "sh", " ".join(keep)]
    return ["unshare", "--mount", "--propagation", "private", *wrapper, *args]


def start(
    args: list[str], env: dict[str, str], log: Path, database_url: str
) -> subprocess.Popen[bytes]:
    # As in the image: no HOME to write to, only what the pod spec sets.
    base = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    with log.open("wb") as out:
        return subprocess.Popen(
            pod_command(args, database_url),
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(check: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}:\n{log.read_text()}")
        try:
            if check():
                return
        except (OSError, grpc.RpcError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"probe never passed:\n{log.read_text()}")
        time.sleep(0.3)


def grpc_health(address: str, service: str = "") -> bool:
    with grpc.insecure_channel(address) as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=2)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def stop(process: subprocess.Popen[bytes], within: float, log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(
            f"not stopped within {within}s of SIGTERM:\n{log.read_text()}"
        ) from None
    assert code == 0, f"exit {code} on SIGTERM:\n{log.read_text()}"


def test_migrate_then_api_and_worker_start_and_pass_their_probes(
    rendered: dict[tuple[str, str], dict[str, Any]], fresh_database: str, tmp_path: Path
) -> None:
    config = dict(rendered[("ConfigMap", "linkplane-config")]["data"])
    secret = {
        "LINKPLANE_DATABASE_URL": fresh_database,
        "LINKPLANE_PAGE_TOKEN_SECRET": secrets.token_urlsafe(32),
    }

    job = rendered[("Job", "linkplane-migrate")]
    migrate = subprocess.run(
        pod_command(command(job), fresh_database),
        env={
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": "/nonexistent",
            **container_env(job, config, secret),
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "up to date" in migrate.stdout

    processes: list[tuple[str, subprocess.Popen[bytes], float, Path]] = []
    try:
        for name in ("linkplane-api", "linkplane-worker"):
            document = rendered[("Deployment", name)]
            pod = document["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            grpc_port, metrics_port = _free_port(), _free_port()
            env = container_env(document, config, secret)
            env["LINKPLANE_LISTEN"] = f"127.0.0.1:{grpc_port}"
            env["LINKPLANE_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
            log = tmp_path / f"{name}.log"
            process = start(command(document), env, log, fresh_database)
            pause = (
                container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            )
            processes.append((name, process, pod["terminationGracePeriodSeconds"] - pause, log))
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = container.get(probe)
                if spec is None:
                    continue
                if "grpc" in spec:
                    service = spec["grpc"].get("service", "")
                    wait_for(
                        lambda p=grpc_port, s=service: grpc_health(f"127.0.0.1:{p}", s),
                        process,
                        log,
                    )
                else:
                    path = spec["httpGet"]["path"]
                    wait_for(
                        lambda p=metrics_port, u=path: http_ok(f"http://127.0.0.1:{p}{u}"),
                        process,
                        log,
                    )
        # Both still up after their probes passed (a worker that crashes on its first sweep
        # would be caught here).
        for name, process, _, log in processes:
            assert process.poll() is None, f"{name} exited:\n{log.read_text()}"
    finally:
        for _, process, within, log in processes:
            if process.poll() is None:
                stop(process, within, log)
    for name, _, _, log in processes:
        assert "Traceback" not in log.read_text(), f"{name}:\n{log.read_text()}"
