"""IAM, audit and credentials through linkplane.client and lpctl, against the real server.

A real linkplane server (Postgres, authentication and authorization on) with three static
tokens: `admin` (a bootstrap administrator), `alice` and `bob` (nothing until granted). The
blocking client and lpctl run in threads, so the server on the test's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from google.iam.v1 import policy_pb2

from linkplane.client import AsyncClient, Client, ClientConfig, errors, iam
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime
from tests.support import runtimes

TOKENS = {"admin-token": "admin", "alice-token": "alice", "bob-token": "bob"}
VIEWER = "roles/linkplane.viewer"
PROVIDER = "roles/linkplane.provider"


@pytest.fixture(scope="module")
async def secured(database_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(
        listen="127.0.0.1:0",
        role=Role.API,
        auth_tokens=TOKENS,
        admins=["admin"],
        page_token_secret="iam-client-tests",
    )
    async with runtimes.running(settings, database_url) as runtime:
        yield runtime


def config(server: Runtime, token: str | None = None, **fields: object) -> ClientConfig:
    return ClientConfig(
        address=f"127.0.0.1:{server.port}",
        token=token,
        default_timeout=30,
        max_attempts=1,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def resource() -> str:
    return f"projects/i-{uuid.uuid4().hex[:12]}"


async def test_bindings_grant_and_revoke_access(secured, resource):
    async with (
        AsyncClient(config(secured, "admin-token")) as admin,
        AsyncClient(config(secured, "alice-token")) as alice,
    ):
        with pytest.raises(errors.PermissionDenied) as denied:
            [a async for a in alice.list_accounts(parent=resource)]
        assert denied.value.metadata["permission"] == "linkplane.accounts.list"

        policy = await admin.add_iam_policy_binding(
            resource=resource, role=VIEWER, member=iam.member("alice")
        )
        assert [(b.role, list(b.members)) for b in policy.bindings] == [(VIEWER, ["user:alice"])]
        assert [a async for a in alice.list_accounts(parent=resource)] == []
        held = await alice.test_iam_permissions(
            resource=resource,
            permissions=["linkplane.accounts.list", "linkplane.services.publish"],
        )
        assert held == ["linkplane.accounts.list"]
        # Granting again changes nothing (and writes nothing).
        again = await admin.add_iam_policy_binding(
            resource=resource, role=VIEWER, member="user:alice"
        )
        assert again.etag == policy.etag

        revoked = await admin.remove_iam_policy_binding(
            resource=resource, role=VIEWER, member="user:alice"
        )
        assert list(revoked.bindings) == []
        with pytest.raises(errors.PermissionDenied):
            [a async for a in alice.list_accounts(parent=resource)]


async def test_stale_etags_are_aborted_and_binding_changes_retry(secured, resource):
    async with AsyncClient(config(secured, "admin-token")) as admin:
        first = await admin.get_iam_policy(resource=resource)
        await admin.set_iam_policy(
            resource=resource,
            policy=policy_pb2.Policy(
                bindings=[policy_pb2.Binding(role=VIEWER, members=["user:bob"])],
                etag=first.etag,
            ),
        )
        stale = policy_pb2.Policy(
            bindings=[policy_pb2.Binding(role=PROVIDER, members=["user:carol"])], etag=first.etag
        )
        with pytest.raises(errors.Aborted):
            await admin.set_iam_policy(resource=resource, policy=stale)
        # Concurrent read-modify-writes: each retries on the other's change, none is lost.
        members = [f"user:m{n}" for n in range(4)]
        await asyncio.gather(
            *(
                admin.add_iam_policy_binding(resource=resource, role=PROVIDER, member=m)
                for m in members
            )
        )
        final = await admin.get_iam_policy(resource=resource)
        by_role = {b.role: set(b.members) for b in final.bindings}
        assert by_role == {VIEWER: {"user:bob"}, PROVIDER: set(members)}


async def test_the_blocking_client_has_the_same_iam_and_audit_methods(secured, resource):
    def scenario() -> tuple[list[str], list[str]]:
        with Client(config(secured, "admin-token")) as admin:
            admin.add_iam_policy_binding(resource=resource, role=PROVIDER, member="user:bob")
            policy = admin.get_iam_policy(resource=resource)
            roles = [b.role for b in policy.bindings]
            methods = [e.method for e in admin.list_audit_events(parent=resource)]
            admin.remove_iam_policy_binding(resource=resource, role=PROVIDER, member="user:bob")
            return roles, methods

    roles, methods = await asyncio.to_thread(scenario)
    assert roles == [PROVIDER]
    assert methods == ["SetIamPolicy"]
    public = {name for name in dir(AsyncClient) if not name.startswith("_")}
    assert public == {name for name in dir(Client) if not name.startswith("_")}


async def test_iam_changes_are_audited_with_their_actor_and_changed_bindings(secured, resource):
    async with (
        AsyncClient(config(secured, "admin-token")) as admin,
        AsyncClient(config(secured, "alice-token")) as alice,
    ):
        await admin.add_iam_policy_binding(resource=resource, role=VIEWER, member="user:alice")
        await admin.add_iam_policy_binding(resource=resource, role=PROVIDER, member="user:carol")
        events = [e async for e in alice.list_audit_events(parent=resource)]
        assert [(e.actor, e.method, e.resource) for e in events] == [
            ("admin", "SetIamPolicy", resource),
            ("admin", "SetIamPolicy", resource),
        ]
        assert all(list(e.changed_fields) == ["bindings"] for e in events)
        assert events[1].details["added"][0]["member"] == "user:carol"
        in_range = [
            e
            async for e in alice.list_audit_events(
                parent=resource, filter='method = "SetIamPolicy" AND time >= "2000-01-01T00:00:00Z"'
            )
        ]
        assert len(in_range) == 2
        async with AsyncClient(config(secured, "bob-token")) as bob:
            with pytest.raises(errors.PermissionDenied):
                [e async for e in bob.list_audit_events(parent=resource)]


async def test_credentials_missing_invalid_or_from_a_rotated_token_file(
    secured, resource, tmp_path
):
    async with AsyncClient(config(secured)) as nobody:
        with pytest.raises(errors.Unauthenticated) as missing:
            await nobody.get_iam_policy(resource=resource)
        assert missing.value.reason == "MISSING_CREDENTIALS"
    async with AsyncClient(config(secured, "forged")) as forged:
        with pytest.raises(errors.Unauthenticated):
            await forged.get_iam_policy(resource=resource)

    token_file = tmp_path / "token"
    token_file.write_text("alice-token\n")
    async with AsyncClient(config(secured, token_file=token_file)) as rotating:
        with pytest.raises(errors.PermissionDenied):  # alice: authenticated, not an admin
            await rotating.get_iam_policy(resource=resource)
        token_file.write_text("admin-token")  # rotated on disk: read on the next call
        assert (await rotating.get_iam_policy(resource=resource)).etag
        token_file.unlink()
        with pytest.raises(errors.Unauthenticated, match="cannot read the bearer token"):
            await rotating.get_iam_policy(resource=resource)

    with pytest.raises(ValueError, match="not both"):
        ClientConfig(token="x", token_file=token_file)
    environment = {"LINKPLANE_TOKEN_FILE": str(token_file), "LINKPLANE_ADDRESS": "h:1"}
    assert ClientConfig.from_env(environment).token_file == str(token_file)
    assert ClientConfig.from_env({**environment, "LINKPLANE_TOKEN": "t"}).token == "t"
    assert ClientConfig.from_env(environment, token="u").token_file is None


def run_lpctl(
    server: Runtime, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LINKPLANE_")}
    environment.update({"LINKPLANE_ADDRESS": f"127.0.0.1:{server.port}", "COLUMNS": "200"})
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "linkplane.client.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


async def lpctl(
    server: Runtime, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_lpctl, server, *args, env=env)


async def test_lpctl_iam_and_audit_with_each_token_source(secured, resource, tmp_path):
    project = resource.removeprefix("projects/")
    token_file = tmp_path / "admin.token"
    token_file.write_text("admin-token\n")

    added = await lpctl(
        secured,
        "--token-file", str(token_file),
        "iam", "add-binding", project, "--role", "viewer", "--member", "alice",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["bindings"] == [{"role": VIEWER, "members": ["user:alice"]}]
    shown = await lpctl(
        secured, "iam", "get", project, env={"LINKPLANE_TOKEN_FILE": str(token_file)}
    )
    assert shown.returncode == 0, shown.stderr
    policy = json.loads(shown.stdout)
    assert policy["bindings"][0]["members"] == ["user:alice"]

    # `iam set` with the etag just read, then again with the same (now stale) etag.
    policy["bindings"].append({"role": PROVIDER, "members": ["user:bob"]})
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(policy))
    replaced = await lpctl(
        secured, "--token", "admin-token", "iam", "set", project, str(policy_file)
    )
    assert replaced.returncode == 0, replaced.stderr
    assert len(json.loads(replaced.stdout)["bindings"]) == 2
    stale = await lpctl(secured, "--token", "admin-token", "iam", "set", project, str(policy_file))
    assert stale.returncode == 5, stale.stderr

    not_held = await lpctl(
        secured,
        "--token", "admin-token",
        "iam", "remove-binding", project, "--role", "admin", "--member", "alice",
    )  # fmt: skip
    assert not_held.returncode == 3, not_held.stderr
    assert "does not hold roles/linkplane.admin" in not_held.stderr

    audit = await lpctl(
        secured,
        "audit", "list", project, "--filter", 'method = "SetIamPolicy"',
        env={"LINKPLANE_TOKEN": "alice-token"},
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    events = json.loads(audit.stdout)
    assert [e["actor"] for e in events] == ["admin", "admin"]
    assert all(e["changedFields"] == ["bindings"] for e in events)
    table = await lpctl(secured, "-o", "table", "--token", "alice-token", "audit", "list", project)
    assert table.returncode == 0, table.stderr
    assert "SetIamPolicy" in table.stdout
    assert "ACTOR" in table.stdout


async def test_lpctl_explains_denied_and_unauthenticated_calls(secured, resource, tmp_path):
    project = resource.removeprefix("projects/")
    denied = await lpctl(secured, "--token", "bob-token", "iam", "get", project)
    assert denied.returncode == 8
    assert "PERMISSION_DENIED" in denied.stderr
    assert f"hint: you lack linkplane.projects.getIamPolicy on projects/{project}" in denied.stderr
    assert "Traceback" not in denied.stderr

    anonymous = await lpctl(secured, "-p", project, "accounts", "list")
    assert anonymous.returncode == 8
    assert "UNAUTHENTICATED" in anonymous.stderr
    assert "hint: the server requires credentials" in anonymous.stderr

    wrong = await lpctl(secured, "--token", "nope", "-p", project, "accounts", "list")
    assert wrong.returncode == 8
    assert "did not accept your credentials" in wrong.stderr

    missing_file = await lpctl(
        secured, "--token-file", str(tmp_path / "absent"), "accounts", "list"
    )
    assert missing_file.returncode == 2
    assert "does not exist" in missing_file.stderr

    both = await lpctl(
        secured,
        "--token", "admin-token", "--token-file", str(tmp_path),
        "accounts", "list",
    )  # fmt: skip
    assert both.returncode == 2
    assert "not both" in both.stderr

    # A flag beats the environment's other kind of token.
    flagged = await lpctl(
        secured,
        "--token", "admin-token", "iam", "get", project,
        env={"LINKPLANE_TOKEN_FILE": str(tmp_path / "absent")},
    )  # fmt: skip
    assert flagged.returncode == 0, flagged.stderr


def test_policy_helpers_copy_and_report_changes():
    policy = policy_pb2.Policy(bindings=[policy_pb2.Binding(role=VIEWER, members=["user:a"])])
    granted, changed = iam.with_binding(policy, PROVIDER, "user:b")
    assert changed
    assert len(policy.bindings) == 1  # the input is not modified
    assert iam.with_binding(granted, PROVIDER, "user:b")[1] is False
    emptied, removed = iam.without_binding(granted, VIEWER, "user:a")
    assert removed
    assert [b.role for b in emptied.bindings] == [PROVIDER]
    assert iam.without_binding(emptied, VIEWER, "user:a")[1] is False
    assert iam.member("alice") == "user:alice"
    assert iam.member("user:alice") == "user:alice"
    assert iam.member("spiffe://example.org/x") == "user:spiffe://example.org/x"
    assert iam.role("admin") == "roles/linkplane.admin"


def test_lpctl_token_precedence(tmp_path):
    from pathlib import Path

    from linkplane.client.cli.state import Credentials, resolve_token

    file = tmp_path / "t"
    profile = {"token": "from-profile", "token_file": "/profile/file"}
    assert resolve_token(Credentials(), {}) == (None, None)
    assert resolve_token(Credentials(), profile) == ("from-profile", None)
    assert resolve_token(Credentials(), {"token_file": "~/t"}) == (None, Path("~/t").expanduser())
    # Environment (not from a flag): a token beats a token file, both beat the profile.
    assert resolve_token(Credentials(token="env", token_file=file), profile) == ("env", None)
    assert resolve_token(Credentials(token_file=file), profile) == (None, file)
    # A flag beats the other kind from the environment.
    flagged_file = Credentials(token="env", token_file=file, token_file_from_flag=True)
    assert resolve_token(flagged_file, {}) == (None, file)
    flagged_token = Credentials(token="flag", token_file=file, token_from_flag=True)
    assert resolve_token(flagged_token, {}) == ("flag", None)
