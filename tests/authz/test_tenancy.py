"""Tenancy: IAM policies, account ownership and secrets, request ids, references, existence.

alice administers project A and bob project B (granted by the bootstrap admin `root`).
"""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest
import sqlalchemy
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from linkplane.server import cli, devmode
from linkplane.server.runtime import Runtime
from linkplane.server.storage import audit, database, models, records
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.authz.conftest import Caller, aws_account_id, new_project, settings
from tests.support.api import status_details


@pytest.fixture
async def tenants(callers: dict[str | None, Caller]) -> tuple[str, str]:
    """Fresh projects A (alice admin) and B (bob admin)."""
    a, b = new_project("a"), new_project("b")
    await callers["root"].grant(a, "roles/linkplane.admin", "alice")
    await callers["root"].grant(b, "roles/linkplane.admin", "bob")
    return a, b


async def refused(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


# ---- IAM policies ---------------------------------------------------------------------------


async def test_set_iam_policy_with_a_stale_etag_is_aborted_and_changes_are_audited(
    callers, tenants, authz_server
):
    a, _ = tenants
    alice = callers["alice"]
    resource = f"projects/{a}"
    first = await alice.iam.GetIamPolicy(iam_policy_pb2.GetIamPolicyRequest(resource=resource))
    assert [(b.role, list(b.members)) for b in first.bindings] == [
        ("roles/linkplane.admin", ["user:alice"])
    ]
    granted = await alice.grant(a, "roles/linkplane.viewer", "carol")
    assert granted.etag != first.etag
    stale = policy_pb2.Policy(bindings=first.bindings, etag=first.etag)
    error = await refused(
        alice.iam.SetIamPolicy(iam_policy_pb2.SetIamPolicyRequest(resource=resource, policy=stale))
    )
    assert error.code() == grpc.StatusCode.ABORTED
    current = await alice.iam.GetIamPolicy(iam_policy_pb2.GetIamPolicyRequest(resource=resource))
    assert current == granted

    async with authz_server.db.transaction() as session:
        entries = await audit.for_resource(session, resource)
    changes = [(e.actor, e.action, e.details["added"], e.details["removed"]) for e in entries]
    assert changes[-1] == (
        "alice",
        "SetIamPolicy",
        [{"role": "roles/linkplane.viewer", "member": "user:carol"}],
        [],
    )


async def test_set_iam_policy_refuses_unknown_roles_bad_members_and_conditions(callers, tenants):
    a, _ = tenants
    policy = policy_pb2.Policy(
        bindings=[
            policy_pb2.Binding(role="roles/owner", members=["user:x"]),
            policy_pb2.Binding(role="roles/linkplane.viewer", members=["group:x", "alice"]),
        ]
    )
    error = await refused(
        callers["alice"].iam.SetIamPolicy(
            iam_policy_pb2.SetIamPolicyRequest(resource=f"projects/{a}", policy=policy)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status_details(error)["fields"] == [
        "policy.bindings[0].role",
        "policy.bindings[1].members[0]",
        "policy.bindings[1].members[1]",
    ]


async def test_test_iam_permissions_answers_for_the_caller_only(callers, tenants):
    a, b = tenants
    await callers["root"].grant(a, "roles/linkplane.consumer", "carol")
    asked = ["linkplane.connections.create", "linkplane.services.publish", "linkplane.x.y"]
    carol = callers["nobody"]
    mine = await callers["alice"].iam.TestIamPermissions(
        iam_policy_pb2.TestIamPermissionsRequest(resource=f"projects/{a}", permissions=asked)
    )
    assert list(mine.permissions) == asked[:2]
    theirs = await callers["alice"].iam.TestIamPermissions(
        iam_policy_pb2.TestIamPermissionsRequest(resource=f"projects/{b}", permissions=asked)
    )
    assert list(theirs.permissions) == []
    nothing = await carol.iam.TestIamPermissions(
        iam_policy_pb2.TestIamPermissionsRequest(resource=f"projects/{a}", permissions=asked)
    )
    assert list(nothing.permissions) == []


async def test_a_revoked_role_stops_working_at_once(callers, tenants):
    a, _ = tenants
    alice, nobody = callers["alice"], callers["nobody"]
    await alice.grant(a, "roles/linkplane.viewer", "nobody")
    request = account_service_pb2.ListAccountsRequest(parent=f"projects/{a}")
    await nobody.accounts.ListAccounts(request)
    policy = await alice.iam.GetIamPolicy(
        iam_policy_pb2.GetIamPolicyRequest(resource=f"projects/{a}")
    )
    kept = [b for b in policy.bindings if b.role != "roles/linkplane.viewer"]
    await alice.iam.SetIamPolicy(
        iam_policy_pb2.SetIamPolicyRequest(
            resource=f"projects/{a}", policy=policy_pb2.Policy(bindings=kept, etag=policy.etag)
        )
    )
    error = await refused(nobody.accounts.ListAccounts(request))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


# ---- denials and existence ------------------------------------------------------------------


async def test_denials_name_the_permission_and_resource_and_do_not_reveal_existence(
    callers, tenants
):
    _, b = tenants
    await callers["root"].register(b, "111111111111")
    answers = []
    for name in (f"projects/{b}/accounts/111111111111", f"projects/{b}/accounts/999999999999"):
        error = await refused(
            callers["alice"].accounts.GetAccount(account_service_pb2.GetAccountRequest(name=name))
        )
        info = status_details(error)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert info["reason"] == "IAM_PERMISSION_DENIED"
        assert info["metadata"] == {"permission": "linkplane.accounts.get", "resource": name}
        answers.append(error.details().replace(name, "NAME"))
    assert answers[0] == answers[1]


async def test_an_account_of_another_project_cannot_be_used(callers, tenants):
    a, b = tenants
    await callers["root"].register(b, "111111111111")
    service = service_pb2.Service(
        provider_account=f"projects/{b}/accounts/111111111111",
        region="us-east-1",
        load_balancer=service_pb2.LoadBalancer(
            managed=service_pb2.ManagedLoadBalancer(
                subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                listeners=[service_pb2.Listener(port=443)],
                targets=[service_pb2.Target(id="10.0.1.10")],
            )
        ),
    )
    error = await refused(
        callers["alice"].provider.PublishService(
            provider_service_pb2.PublishServiceRequest(parent=f"projects/{a}", service=service)
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert status_details(error)["reason"] == "CROSS_PROJECT_REFERENCE"


# ---- accounts -------------------------------------------------------------------------------


async def test_an_aws_account_belongs_to_one_project_unless_shared(callers, tenants):
    a, b = tenants
    alice, bob = callers["alice"], callers["bob"]
    account_id = aws_account_id()
    await alice.register(a, account_id)
    error = await refused(bob.register(b, account_id))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert a not in error.details()
    assert a not in str(status_details(error)["metadata"])

    name = f"projects/{a}/accounts/{account_id}"
    current = await alice.accounts.GetAccount(account_service_pb2.GetAccountRequest(name=name))
    shared = await alice.accounts.UpdateAccount(
        account_service_pb2.UpdateAccountRequest(
            account=account_pb2.Account(
                name=name, etag=current.etag, shared_with_projects=[f"projects/{b}"]
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["shared_with_projects"]),
        )
    )
    assert list(shared.shared_with_projects) == [f"projects/{b}"]
    registered = await bob.register(b, account_id)
    assert registered.name == f"projects/{b}/accounts/{account_id}"
    # A third project that nobody shared with is still refused.
    c = new_project("c")
    await callers["root"].grant(c, "roles/linkplane.admin", "bob")
    assert (await refused(bob.register(c, account_id))).code() == grpc.StatusCode.ALREADY_EXISTS


async def test_external_id_is_write_only_and_role_arn_is_for_admins(callers, tenants):
    a, _ = tenants
    alice = callers["alice"]
    await alice.grant(a, "roles/linkplane.viewer", "viewer")
    account_id = aws_account_id()
    role_arn = f"arn:aws:iam::{account_id}:role/linkplane"
    secret = f"ext-{uuid.uuid4().hex}"
    created = await alice.register(a, account_id, role_arn=role_arn, external_id=secret)
    assert created.external_id == "" and created.external_id_set
    assert created.role_arn == role_arn
    name = created.name
    as_admin = await alice.accounts.GetAccount(account_service_pb2.GetAccountRequest(name=name))
    as_viewer = await callers["viewer"].accounts.GetAccount(
        account_service_pb2.GetAccountRequest(name=name)
    )
    assert as_admin.role_arn == role_arn and as_admin.external_id_set
    assert as_viewer.role_arn == "" and as_viewer.external_id_set
    listed = await callers["viewer"].accounts.ListAccounts(
        account_service_pb2.ListAccountsRequest(parent=f"projects/{a}")
    )
    assert secret.encode() not in listed.SerializeToString()
    assert all(acct.role_arn == "" for acct in listed.accounts)

    # A read-modify-write of the whole account keeps the external id it cannot see.
    as_admin.display_name = "renamed"
    updated = await alice.accounts.UpdateAccount(
        account_service_pb2.UpdateAccountRequest(account=as_admin)
    )
    assert updated.external_id_set and updated.display_name == "renamed"
    cleared = await alice.accounts.UpdateAccount(
        account_service_pb2.UpdateAccountRequest(
            account=account_pb2.Account(name=name),
            update_mask=field_mask_pb2.FieldMask(paths=["external_id"]),
        )
    )
    assert not cleared.external_id_set


async def test_secrets_stay_out_of_the_audit_log_and_of_failed_query_logs(
    callers, tenants, authz_server, database_url, caplog
):
    a, _ = tenants
    account_id = aws_account_id()
    secret = f"ext-{uuid.uuid4().hex}"
    created = await callers["alice"].register(
        a, account_id, role_arn=f"arn:aws:iam::{account_id}:role/lp", external_id=secret
    )
    async with authz_server.db.transaction() as session:
        entries = await audit.for_resource(session, created.name)
    assert entries and all(secret not in str(e.details) for e in entries)

    # A query that fails (a duplicate primary key) with the secret among its parameters.
    db = database.Database(database_url)
    caplog.set_level(logging.DEBUG)

    async def insert_duplicate() -> None:
        async with db.transaction() as session:
            await session.execute(
                sqlalchemy.insert(models.Account).values(
                    uid=uuid.UUID(created.uid),
                    name=created.name,
                    project=a,
                    aws_account_id=account_id,
                    display_name="",
                    labels={},
                    spec={"external_id": secret},
                    revision=1,
                    shared_with_projects=[],
                )
            )

    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - any database error
            await insert_duplicate()
    finally:
        await db.close()
    import traceback

    rendered = "".join(traceback.format_exception(caught.value))
    assert "hide_parameters" in rendered  # the SQL is there, its parameters are not
    assert secret not in rendered
    assert secret not in caplog.text


# ---- request ids ----------------------------------------------------------------------------


async def test_request_ids_are_scoped_per_principal(callers, tenants):
    a, _ = tenants
    await callers["root"].grant(a, "roles/linkplane.admin", "bob")
    request_id = str(uuid.uuid4())
    first, second = aws_account_id(), aws_account_id()

    def register(account_id: str) -> account_service_pb2.RegisterAccountRequest:
        return account_service_pb2.RegisterAccountRequest(
            parent=f"projects/{a}",
            account_id=account_id,
            request_id=request_id,
            account=account_pb2.Account(display_name="x"),
        )

    by_alice = await callers["alice"].accounts.RegisterAccount(register(first))
    # The same id from alice again replays her request …
    assert await callers["alice"].accounts.RegisterAccount(register(first)) == by_alice
    # … but from bob it is a request of his own: neither a replay of alice's nor "reused".
    by_bob = await callers["bob"].accounts.RegisterAccount(register(second))
    assert by_bob.name.endswith(second)
    error = await refused(callers["bob"].accounts.RegisterAccount(register(first)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # bob reused *his* id


# ---- process configuration ------------------------------------------------------------------


async def test_health_needs_no_credentials_and_reflection_can_be_turned_off(database_url):
    runtime = Runtime(settings(reflection=False), database_url)
    await runtime.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="")
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            from grpc_reflection.v1alpha import reflection_pb2

            # Sent as a unary call: its message goes out in one batch with the call, where a
            # stream's separate send can race the server's immediate UNIMPLEMENTED and fail in
            # the client's own core (INTERNAL "Failed execute_batch", seen once in the suite).
            reflect = channel.unary_unary(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await reflect(reflection_pb2.ServerReflectionRequest(list_services=""))
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await runtime.stop()


def test_serve_refuses_to_start_without_a_page_token_key(monkeypatch):
    monkeypatch.setenv("LINKPLANE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.delenv("LINKPLANE_PAGE_TOKEN_SECRET", raising=False)
    result = CliRunner().invoke(cli.app, ["serve"])
    assert result.exit_code == 2
    assert "LINKPLANE_PAGE_TOKEN_SECRET" in result.output


def test_dev_mode_says_authentication_is_off_and_how_to_turn_it_on():
    off = devmode.walkthrough("127.0.0.1:50051", {}, None)
    assert "Authentication is off" in off
    assert "LINKPLANE_AUTH_TOKENS" in off and "LINKPLANE_ADMINS" in off
    on = devmode.walkthrough("127.0.0.1:50051", {}, None, auth_enabled=True)
    assert "Authentication is on" in on


async def test_the_inventory_names_and_filters_only_connections_of_the_services_project(
    callers, tenants, authz_server
):
    a, b = tenants
    root = callers["root"]
    await root.register(a, "111111111111")
    await root.provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{a}",
            service_id="svc",
            service=service_pb2.Service(
                provider_account=f"projects/{a}/accounts/111111111111",
                region="us-east-1",
                load_balancer=service_pb2.LoadBalancer(
                    managed=service_pb2.ManagedLoadBalancer(
                        subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                        listeners=[service_pb2.Listener(port=443)],
                        targets=[service_pb2.Target(id="10.0.1.10")],
                    )
                ),
            ),
        )
    )
    service = f"projects/{a}/services/svc"
    ours, theirs = f"projects/{a}/connections/local", f"projects/{b}/connections/remote"
    async with authz_server.db.transaction() as session:
        row = await records.get(session, models.Service, service)
        assert row is not None
        for endpoint_id, name in (
            ("vpce-0000000000000000a", ours),
            ("vpce-0000000000000000b", theirs),
        ):
            session.add(
                models.ServiceConnection(
                    service_uid=row.uid,
                    endpoint_id=endpoint_id,
                    owner_account_id="222222222222",
                    state="PENDING_ACCEPTANCE",
                    connection_name=name,
                )
            )

    async def listed(filter_text: str = "") -> list[tuple[str, str]]:
        response = await root.provider.ListServiceConnections(
            provider_service_pb2.ListServiceConnectionsRequest(parent=service, filter=filter_text)
        )
        return [(c.endpoint_id, c.connection) for c in response.service_connections]

    assert await listed() == [("vpce-0000000000000000a", ours), ("vpce-0000000000000000b", "")]
    assert await listed(f'connection = "{ours}"') == [("vpce-0000000000000000a", ours)]
    assert await listed(f'connection = "{theirs}"') == []


async def test_a_watch_ends_at_its_next_event_once_the_role_is_revoked(callers, tenants):
    a, _ = tenants
    alice, watcher = callers["alice"], callers["nobody"]
    await callers["root"].register(a, "111111111111")
    await alice.grant(a, "roles/linkplane.viewer", "nobody")
    stream = watcher.provider.WatchServices(
        provider_service_pb2.WatchServicesRequest(parent=f"projects/{a}", send_initial=True),
        timeout=60,
    )
    events = stream.__aiter__()
    first = await events.__anext__()
    assert first.type  # SYNCED: the initial (empty) state was delivered
    policy = await alice.iam.GetIamPolicy(
        iam_policy_pb2.GetIamPolicyRequest(resource=f"projects/{a}")
    )
    kept = [b for b in policy.bindings if b.role != "roles/linkplane.viewer"]
    await alice.iam.SetIamPolicy(
        iam_policy_pb2.SetIamPolicyRequest(
            resource=f"projects/{a}", policy=policy_pb2.Policy(bindings=kept, etag=policy.etag)
        )
    )
    await callers["root"].provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{a}",
            service_id="after-revocation",
            service=service_pb2.Service(
                provider_account=f"projects/{a}/accounts/111111111111",
                region="us-east-1",
                load_balancer=service_pb2.LoadBalancer(
                    managed=service_pb2.ManagedLoadBalancer(
                        subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                        listeners=[service_pb2.Listener(port=443)],
                        targets=[service_pb2.Target(id="10.0.1.10")],
                    )
                ),
            ),
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.__anext__()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_admins_reflection_and_page_key_come_from_the_environment(monkeypatch):
    from linkplane.server.config import Settings

    monkeypatch.setenv("LINKPLANE_ADMINS", '["alice", "user:bob"]')
    monkeypatch.setenv("LINKPLANE_REFLECTION", "false")
    monkeypatch.setenv("LINKPLANE_PAGE_TOKEN_SECRET", "s3cret")
    configured = Settings()
    assert configured.admins == ["alice", "user:bob"]
    assert configured.reflection is False
    assert configured.page_token_key() == b"s3cret"
    monkeypatch.delenv("LINKPLANE_PAGE_TOKEN_SECRET")
    # Unset: a random key per process (dev and tests), never a built-in constant.
    assert Settings().page_token_key() == Settings().page_token_key()
    assert Settings().page_token_key() not in {b"", b"linkplane-page-tokens"}


def test_which_allowed_principals_admit_a_consumer_account():
    from linkplane.server.api import authz

    account = "222222222222"
    assert authz.admits(["*"], account)
    assert authz.admits([account], account)
    assert authz.admits([f"arn:aws:iam::{account}:root"], account)
    assert authz.admits([f"arn:aws:iam::{account}:role/linkplane"], account)
    assert not authz.admits(["333333333333", "arn:aws:iam::333333333333:root"], account)
    # Organization principals cannot be verified here: they do not count.
    org = "arn:aws:organizations::111111111111:organization/o-abcdefghij"
    assert not authz.admits([org], account)
    assert not authz.admits([], account)
