"""The typed clients against the scripted fake over real gRPC: operations, paging, watches,
errors and retries, for both the asyncio and the blocking client."""

from __future__ import annotations

import dataclasses
import threading

import grpc
import pytest

from linkplane.client import (
    AsyncClient,
    Client,
    ClientConfig,
    errors,
)
from linkplane.v1 import account_pb2, service_pb2
from tests.client.linkplane_fake import Backend, FakeServer

PARENT = "projects/default"
PROVIDER = "projects/default/accounts/111111111111"


def spec(**labels: str) -> dict[str, object]:
    return {
        "providerAccount": PROVIDER,
        "region": "us-east-1",
        "loadBalancer": {"managed": {"subnetIds": ["subnet-a"], "listeners": [{"port": 443}]}},
        "labels": labels,
    }


async def test_operation_result_reports_each_state_change(aclient: AsyncClient) -> None:
    op = await aclient.publish_service(parent=PARENT, service=spec(), service_id="payments")
    assert op.name.startswith("operations/")
    assert op.metadata.target == f"{PARENT}/services/payments"
    seen: list[tuple[str, str]] = []

    def on_progress(metadata, resource):
        seen.append((metadata.progress_message, service_pb2.Service.State.Name(resource.state)))

    service = await op.result(timeout=5, on_progress=on_progress)
    assert isinstance(service, service_pb2.Service)
    assert service.state == service_pb2.Service.STATE_ACTIVE
    assert op.done
    assert seen[0] == ("queued", "STATE_CREATING")
    assert ("creating the endpoint service", "STATE_CREATING") in seen
    assert seen[-1] == ("done", "STATE_ACTIVE")
    assert len(seen) == len(set(seen)), "progress is reported on changes only"


async def test_failed_operation_raises_operation_failed_with_details(aclient: AsyncClient) -> None:
    op = await aclient.publish_service(parent=PARENT, service=spec(fail="yes"), service_id="doomed")
    with pytest.raises(errors.OperationFailed) as caught:
        await op.result(timeout=5)
    failure = caught.value
    assert isinstance(failure.error, errors.FailedPrecondition)
    assert failure.code is grpc.StatusCode.FAILED_PRECONDITION
    assert failure.reason == "SUBNET_NOT_IN_ACCOUNT"
    assert failure.domain == "linkplane.dev"
    assert failure.metadata == {"subnet_id": "subnet-x"}


async def test_delete_operation_result_is_none(aclient: AsyncClient) -> None:
    await (await aclient.publish_service(parent=PARENT, service=spec(), service_id="s")).result(5)
    op = await aclient.delete_service(name=f"{PARENT}/services/s")
    assert await op.result(timeout=5) is None
    with pytest.raises(errors.NotFound):
        await aclient.get_service(name=f"{PARENT}/services/s")


async def test_operation_timeout_is_a_timeout_error(aclient: AsyncClient, backend: Backend) -> None:
    op = await aclient.publish_service(parent=PARENT, service=spec(), service_id="slow")
    backend.operations[op.name].steps.extend([("still working", lambda: None)] * 1000)
    with pytest.raises(TimeoutError) as caught:
        await op.result(timeout=0.2)
    assert isinstance(caught.value, errors.OperationTimeout)
    assert not op.done


async def test_get_and_list_operations(aclient: AsyncClient) -> None:
    op = await aclient.publish_service(parent=PARENT, service=spec(), service_id="ops")
    fetched = await aclient.get_operation(name=op.name)
    assert fetched.metadata.verb == "publish"
    running = [o.name async for o in aclient.list_operations(filter="done = false")]
    assert op.name in running
    waited = await aclient.wait_operation(name=op.name)
    assert waited.done
    assert isinstance(await waited.result(), service_pb2.Service)


async def test_pagination_follows_tokens_across_pages(
    aclient: AsyncClient, backend: Backend
) -> None:
    for i in range(7):
        backend.add_service(f"{PARENT}/services/s{i}", state=service_pb2.Service.STATE_ACTIVE)
    pager = aclient.list_services(parent=PARENT, page_size=3)
    names = [s.name async for s in pager]
    assert names == [f"{PARENT}/services/s{i}" for i in range(7)]
    requests = backend.calls["ListServices"]
    assert [r.page_size for r in requests] == [3, 3, 3]
    assert requests[0].page_token == ""
    assert requests[1].page_token
    assert requests[2].page_token
    pages = [len(p.items) async for p in aclient.list_services(parent=PARENT, page_size=3).pages()]
    assert pages == [3, 3, 1]
    assert len(await aclient.list_services(parent=PARENT, page_size=3).collect(limit=4)) == 4


def test_sync_client_pagination_and_operations(client: Client, backend: Backend) -> None:
    for i in range(5):
        client.register_account(
            parent="projects/other", account=account_pb2.Account(), account_id=f"33333333333{i}"
        )
    pages = list(client.list_accounts(parent="projects/other", page_size=2).pages())
    assert [len(p.items) for p in pages] == [2, 2, 1]
    op = client.publish_service(parent=PARENT, service=spec(), service_id="sync")
    states: list[int] = []
    result = op.result(timeout=5, on_progress=lambda m, r: states.append(r.state))
    assert result.state == service_pb2.Service.STATE_ACTIVE
    assert states[0] == service_pb2.Service.STATE_CREATING


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
async def test_every_status_code_maps_to_its_exception(
    config: ClientConfig, backend: Backend, code: grpc.StatusCode
) -> None:
    expected = errors.error_class(code)
    backend.fail("GetService", code)
    # One attempt, so UNAVAILABLE is mapped too rather than retried into the next answer.
    async with AsyncClient(dataclasses.replace(config, max_attempts=1)) as aclient:
        with pytest.raises(errors.LinkplaneError) as caught:
            await aclient.get_service(name=f"{PARENT}/services/x")
    error = caught.value
    assert type(error) is expected
    assert error.code is code
    assert error.reason == "INJECTED"
    assert error.metadata == {"method": "GetService"}


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
def test_only_unavailable_is_retried(
    client: Client, backend: Backend, code: grpc.StatusCode
) -> None:
    backend.fail("GetAccount", code)
    name = f"{PARENT}/accounts/111111111111"
    if code is grpc.StatusCode.UNAVAILABLE:
        assert client.get_account(name=name).name == name
        assert len(backend.calls["GetAccount"]) == 2
    else:
        with pytest.raises(errors.error_class(code)):
            client.get_account(name=name)
        assert len(backend.calls["GetAccount"]) == 1, f"{code.name} must not be retried"


def test_subclasses_for_the_codes_that_matter() -> None:
    assert errors.error_class(grpc.StatusCode.ABORTED) is errors.Aborted
    assert errors.error_class(grpc.StatusCode.NOT_FOUND) is errors.NotFound
    assert errors.error_class(grpc.StatusCode.INVALID_ARGUMENT) is errors.InvalidArgument


async def test_unavailable_is_retried_with_the_same_request_id(
    aclient: AsyncClient, backend: Backend
) -> None:
    backend.fail("PublishService", grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    op = await aclient.publish_service(parent=PARENT, service=spec(), service_id="flaky")
    attempts = backend.calls["PublishService"]
    assert len(attempts) == 3
    assert attempts[0].request_id
    assert len({a.request_id for a in attempts}) == 1
    assert (await op.result(timeout=5)).name == f"{PARENT}/services/flaky"


def test_sync_retry_gives_up_after_max_attempts(config: ClientConfig, backend: Backend) -> None:
    backend.fail("GetAccount", *[grpc.StatusCode.UNAVAILABLE] * 10)
    with Client(config) as sync_client, pytest.raises(errors.Unavailable):
        sync_client.get_account(name=f"{PARENT}/accounts/111111111111")
    assert len(backend.calls["GetAccount"]) == config.max_attempts


def test_explicit_request_id_is_sent_and_never_retried_on_other_codes(
    client: Client, backend: Backend
) -> None:
    backend.fail("RegisterAccount", grpc.StatusCode.INTERNAL)
    with pytest.raises(errors.Internal):
        client.register_account(
            parent=PARENT, account={}, account_id="444444444444", request_id="fixed-id"
        )
    assert [r.request_id for r in backend.calls["RegisterAccount"]] == ["fixed-id"]


def test_bearer_token_is_sent_without_tls(config: ClientConfig, backend: Backend) -> None:
    with Client(dataclasses.replace(config, token="s3cret")) as sync_client:
        sync_client.get_account(name=f"{PARENT}/accounts/111111111111")
    assert backend.metadata["GetAccount"]["authorization"] == "Bearer s3cret"


def test_config_from_env(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"PEM")
    config = ClientConfig.from_env(
        {"LINKPLANE_ADDRESS": "lp:443", "LINKPLANE_TOKEN": "t", "LINKPLANE_TLS_CA": str(ca)},
        default_timeout=3.0,
    )
    assert (config.address, config.token, config.tls_root_certificates) == ("lp:443", "t", b"PEM")
    assert config.uses_tls
    assert config.default_timeout == 3.0
    assert ClientConfig.from_env({}).address == "127.0.0.1:50051"


def _watch_fault(backend: Backend) -> None:
    backend.set_service(f"{PARENT}/services/w2", display_name="changed while away")
    backend.remove_service(f"{PARENT}/services/w3")
    backend.add_service(f"{PARENT}/services/w4")


@pytest.mark.parametrize("mode", ["abort", "end"])
async def test_watch_reconnects_and_reports_only_real_changes(
    aclient: AsyncClient, backend: Backend, fake_server: FakeServer, mode: str
) -> None:
    for i in (1, 2, 3):
        backend.add_service(f"{PARENT}/services/w{i}")
    backend.watch_fault = (mode, lambda: _watch_fault(backend))
    events: list[tuple[str, str]] = []
    watch = aclient.watch_services(parent=PARENT)
    async for event in watch:
        events.append(
            (event.type_name, event.resource.name.rsplit("/", 1)[-1] if event.resource else "")
        )
        if event.type_name == "SYNCED" and len(backend.watch_requests) == 2:
            fake_server.call(lambda: backend.add_service(f"{PARENT}/services/w5"))
        if events[-1] == ("ADDED", "w5"):
            break
        if len(backend.watch_requests) == 2 and event.type_name == "DELETED":
            fake_server.call(lambda: backend.add_service(f"{PARENT}/services/w5"))
    await watch.aclose()
    assert events == [
        ("EXISTING", "w1"),
        ("EXISTING", "w2"),
        ("EXISTING", "w3"),
        ("SYNCED", ""),
        ("MODIFIED", "w2"),
        ("ADDED", "w4"),
        ("DELETED", "w3"),
        ("ADDED", "w5"),
    ]
    assert all(r.send_initial for r in backend.watch_requests)


def test_sync_watch_without_initial_snapshot(
    client: Client, backend: Backend, fake_server: FakeServer
) -> None:
    backend.add_service(f"{PARENT}/services/old")
    backend.watch_fault = ("abort", lambda: None)
    watch = client.watch_services(parent=PARENT, send_initial=False)
    fake_server.call(lambda: None)
    iterator = iter(watch)
    # Only live changes: the snapshot (and its replay after the abort) stays hidden.
    threading.Timer(
        0.3, lambda: fake_server.call(lambda: backend.add_service(f"{PARENT}/services/new"))
    ).start()
    event = next(iterator)
    watch.close()
    assert (event.type_name, event.resource.name) == ("ADDED", f"{PARENT}/services/new")
    assert len(backend.watch_requests) == 2


@pytest.mark.parametrize(
    "mask",
    ["display_name,labels", " display_name , labels ", ["display_name", "labels"]],
    ids=["comma-string", "comma-string-with-blanks", "list"],
)
async def test_update_mask_is_a_list_or_a_comma_separated_string(
    aclient: AsyncClient, client: Client, backend: Backend, mask: str | list[str]
) -> None:
    name = f"{PARENT}/services/masked"
    backend.add_service(name)
    await aclient.update_service(service={"name": name, "displayName": "x"}, update_mask=mask)
    client.update_service(service={"name": name, "displayName": "y"}, update_mask=mask)
    sent = [list(r.update_mask.paths) for r in backend.calls["UpdateService"]]
    assert sent == [["display_name", "labels"]] * 2
