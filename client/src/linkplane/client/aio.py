"""`AsyncClient`: the asyncio client for linkplane, one method per RPC.

A thin typed layer over the generated grpc.aio stubs (ProviderService, ConsumerService,
AccountService, AuditService, google.iam.v1.IAMPolicy and google.longrunning.Operations). Each
method takes keyword arguments, applies the config's deadline and UNAVAILABLE-only retry
(`_transport`), and returns plain messages, `AsyncOperation` handles for long-running mutations,
`AsyncPager`s for lists and `AsyncWatch`es for streams.

This is the source of the blocking `sync.Client`: `scripts/gen_sync_client.py` rewrites it
(coroutines to functions, `Async*` handles to their blocking twins) and CI fails when the
committed `sync.py` drifts. Write it so the rewrite reads well: no asyncio-only calls inline
(`_transport` has an async/sync pair for each), docstrings that say `await x` where the blocking
twin says `x`.
"""

# ASYNC109: `timeout` is the gRPC deadline sent to the server (it propagates, AIP-style);
# asyncio.timeout() would only stop waiting locally and leave the server working.
# ruff: noqa: ASYNC109

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

import grpc.aio
from google.iam.v1 import iam_policy_pb2, iam_policy_pb2_grpc, policy_pb2
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import message

from linkplane.client import _requests, _transport, errors, iam, pagers, watches
from linkplane.client import config as config_
from linkplane.client.operations import AsyncOperation
from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    audit_event_pb2,
    audit_service_pb2,
    audit_service_pb2_grpc,
    connection_pb2,
    consumer_service_pb2,
    consumer_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
    service_pb2,
)

__all__ = ["AsyncClient"]

ItemT = TypeVar("ItemT")


class _ListRequest(Protocol):
    """A List request message (AIP-158), as far as paging through its responses goes."""

    page_token: str


class AsyncClient:
    """Asyncio client for the linkplane API.

    Use as `async with AsyncClient(ClientConfig(address=...)) as client: ...`, or call
    `close()`. Every method raises `LinkplaneError` subclasses, never `grpc.RpcError`.
    """

    def __init__(
        self, config: config_.ClientConfig | None = None, *, channel: grpc.aio.Channel | None = None
    ) -> None:
        self.config = config or config_.ClientConfig()
        """The configuration this client was built with."""
        self._channel = channel or _transport.async_channel(self.config)
        self._provider: Any = provider_service_pb2_grpc.ProviderServiceStub(self._channel)
        self._consumer: Any = consumer_service_pb2_grpc.ConsumerServiceStub(self._channel)
        self._accounts: Any = account_service_pb2_grpc.AccountServiceStub(self._channel)
        self._operations: Any = operations_pb2_grpc.OperationsStub(self._channel)
        self._iam: Any = iam_policy_pb2_grpc.IAMPolicyStub(self._channel)
        self._audit: Any = audit_service_pb2_grpc.AuditServiceStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; in-flight calls are cancelled."""
        await _transport.close_async(self._channel)

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        return await _transport.call_async(method, request, config=self.config, timeout=timeout)

    def _pager(
        self,
        method: Any,
        request: _ListRequest,
        items: Callable[[Any], Iterable[ItemT]],
        timeout: float | None,
    ) -> pagers.AsyncPager[ItemT]:
        """A pager over the List RPC `method`, for every `list_*` method (AIP-158).

        `request` asks for the first page; a copy of it is sent for each page with that page's
        token. `items` picks the page's resources out of a response. `timeout` applies per page.
        """

        async def fetch(token: str) -> pagers.Page[ItemT]:
            page_request = copy.deepcopy(request)
            page_request.page_token = token
            response = await self._call(method, page_request, timeout)
            return pagers.Page(list(items(response)), response.next_page_token)

        return pagers.AsyncPager(fetch, page_token=request.page_token)

    def _watch(
        self,
        method: Any,
        request: message.Message,
        field: str,
        send_initial: bool,
        timeout: float | None,
    ) -> watches.AsyncWatch[ItemT]:
        """A reconnecting watch over the streaming RPC `method`, for every `watch_*` method.

        `request` is re-sent on each (re)connection and must ask for the initial snapshot
        (`send_initial=True`): `AsyncWatch` needs it to tell what changed while disconnected, and
        shows it to the caller only when the caller's own `send_initial` asks for it. `field` is
        the response field holding the resource.
        """
        # Fail now on unreadable credentials; each (re)connect reads them again (token files).
        _transport.call_metadata(self.config)
        return watches.AsyncWatch(
            lambda: method(
                request, timeout=timeout, metadata=_transport.call_metadata(self.config)
            ),
            field,
            config=self.config,
            send_initial=send_initial,
        )

    # -- ProviderService --------------------------------------------------------------------

    async def publish_service(
        self,
        *,
        parent: str,
        service: _requests.ServiceLike,
        service_id: str = "",
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[service_pb2.Service]:
        """Publish a service (NLB, endpoint service, principals, private DNS).

        `parent` is `projects/{project}`; `service_id` is generated by the server when empty;
        `request_id` defaults to a fresh UUID reused by every retry. Returns the operation;
        `await op.result()` gives the published `Service`.
        """
        request = _requests.publish_service(parent, service, service_id, request_id, validate_only)
        proto = await self._call(self._provider.PublishService, request, timeout)
        return AsyncOperation[service_pb2.Service](self, proto)

    async def get_service(self, *, name: str, timeout: float | None = None) -> service_pb2.Service:
        """Return the service `projects/{project}/services/{service}`."""
        request = provider_service_pb2.GetServiceRequest(name=name)
        result: service_pb2.Service = await self._call(self._provider.GetService, request, timeout)
        return result

    def list_services(
        self,
        *,
        parent: str,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> pagers.AsyncPager[service_pb2.Service]:
        """Iterate over every service of `parent` matching `filter`, across pages.

        `page_size` is passed through (0: the server's default); `timeout` applies per page.
        """
        request = provider_service_pb2.ListServicesRequest(
            parent=parent, filter=filter, page_size=page_size, page_token=page_token
        )
        return self._pager(self._provider.ListServices, request, lambda r: r.services, timeout)

    async def update_service(
        self,
        *,
        service: _requests.ServiceLike,
        update_mask: _requests.UpdateMask | None = None,
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[service_pb2.Service]:
        """Change the service named by `service.name`; only `update_mask` paths when given.

        Send the service's `etag` to fail with `Aborted` on concurrent changes.
        """
        request = _requests.update_service(service, update_mask, request_id, validate_only)
        proto = await self._call(self._provider.UpdateService, request, timeout)
        return AsyncOperation[service_pb2.Service](self, proto)

    async def delete_service(
        self,
        *,
        name: str,
        etag: str = "",
        force: bool = False,
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[None]:
        """Delete a service; `force` rejects live connections first instead of failing with
        `FailedPrecondition`. `await op.result()` returns None once it is gone."""
        request = _requests.delete_service(name, etag, force, request_id, validate_only)
        proto = await self._call(self._provider.DeleteService, request, timeout)
        return AsyncOperation[None](self, proto)

    async def verify_service_private_dns(
        self,
        *,
        name: str,
        etag: str = "",
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[service_pb2.Service]:
        """Ask AWS now to look for the TXT record proving the service's private DNS name.

        `await op.result()` gives the Service once AWS found the record, and raises
        `OperationFailed` (a FailedPrecondition, reason PRIVATE_DNS_NOT_VERIFIED) when it did
        not. linkplane also asks again by itself, less and less often, while it is unverified.
        """
        request = _requests.verify_service_private_dns(name, etag, request_id, validate_only)
        proto = await self._call(self._provider.VerifyServicePrivateDns, request, timeout)
        return AsyncOperation[service_pb2.Service](self, proto)

    def list_service_connections(
        self,
        *,
        parent: str,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> pagers.AsyncPager[service_pb2.ServiceConnection]:
        """Iterate over every endpoint connection AWS reports for the service `parent`,
        including consumers outside linkplane (e.g. `filter='state = PENDING_ACCEPTANCE'`)."""
        request = provider_service_pb2.ListServiceConnectionsRequest(
            parent=parent, filter=filter, page_size=page_size, page_token=page_token
        )
        return self._pager(
            self._provider.ListServiceConnections, request, lambda r: r.service_connections, timeout
        )

    async def accept_service_connections(
        self,
        *,
        service: str,
        endpoint_ids: Sequence[str],
        reason: str = "",
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[provider_service_pb2.AcceptServiceConnectionsResponse]:
        """Accept pending connection requests (`vpce-...` ids) to `service`; `reason` goes to
        the audit log."""
        request = _requests.accept_service_connections(
            service, endpoint_ids, reason, request_id, validate_only
        )
        proto = await self._call(self._provider.AcceptServiceConnections, request, timeout)
        return AsyncOperation[provider_service_pb2.AcceptServiceConnectionsResponse](self, proto)

    async def reject_service_connections(
        self,
        *,
        service: str,
        endpoint_ids: Sequence[str],
        reason: str = "",
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[provider_service_pb2.RejectServiceConnectionsResponse]:
        """Reject connection requests or live connections (`vpce-...` ids) to `service`."""
        request = _requests.reject_service_connections(
            service, endpoint_ids, reason, request_id, validate_only
        )
        proto = await self._call(self._provider.RejectServiceConnections, request, timeout)
        return AsyncOperation[provider_service_pb2.RejectServiceConnectionsResponse](self, proto)

    def watch_services(
        self,
        *,
        parent: str,
        filter: str = "",
        send_initial: bool = True,
        timeout: float | None = None,
    ) -> watches.AsyncWatch[service_pb2.Service]:
        """Stream changes of the services of `parent`, reconnecting on transient failures.

        With `send_initial`, every matching service first arrives as EXISTING, then SYNCED.
        Streams have no deadline unless `timeout` is given (per connection).
        """
        request = provider_service_pb2.WatchServicesRequest(
            parent=parent, filter=filter, send_initial=True
        )
        return self._watch(self._provider.WatchServices, request, "service", send_initial, timeout)

    # -- ConsumerService --------------------------------------------------------------------

    async def create_connection(
        self,
        *,
        parent: str,
        connection: _requests.ConnectionLike,
        connection_id: str = "",
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[connection_pb2.Connection]:
        """Create an interface endpoint (a Connection) to a service; `await op.result()` gives
        the `Connection` once the endpoint exists (often PENDING_ACCEPTANCE)."""
        request = _requests.create_connection(
            parent, connection, connection_id, request_id, validate_only
        )
        proto = await self._call(self._consumer.CreateConnection, request, timeout)
        return AsyncOperation[connection_pb2.Connection](self, proto)

    async def get_connection(
        self, *, name: str, timeout: float | None = None
    ) -> connection_pb2.Connection:
        """Return the connection `projects/{project}/connections/{connection}`."""
        request = consumer_service_pb2.GetConnectionRequest(name=name)
        result: connection_pb2.Connection = await self._call(
            self._consumer.GetConnection, request, timeout
        )
        return result

    def list_connections(
        self,
        *,
        parent: str,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> pagers.AsyncPager[connection_pb2.Connection]:
        """Iterate over every connection of `parent` matching `filter`, across pages."""
        request = consumer_service_pb2.ListConnectionsRequest(
            parent=parent, filter=filter, page_size=page_size, page_token=page_token
        )
        return self._pager(
            self._consumer.ListConnections, request, lambda r: r.connections, timeout
        )

    async def update_connection(
        self,
        *,
        connection: _requests.ConnectionLike,
        update_mask: _requests.UpdateMask | None = None,
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[connection_pb2.Connection]:
        """Change the connection named by `connection.name` (subnets, security groups, DNS,
        policy, labels)."""
        request = _requests.update_connection(connection, update_mask, request_id, validate_only)
        proto = await self._call(self._consumer.UpdateConnection, request, timeout)
        return AsyncOperation[connection_pb2.Connection](self, proto)

    async def delete_connection(
        self,
        *,
        name: str,
        etag: str = "",
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncOperation[None]:
        """Delete a connection and its endpoint; `await op.result()` returns None once gone."""
        request = _requests.delete_connection(name, etag, request_id, validate_only)
        proto = await self._call(self._consumer.DeleteConnection, request, timeout)
        return AsyncOperation[None](self, proto)

    def watch_connections(
        self,
        *,
        parent: str,
        filter: str = "",
        send_initial: bool = True,
        timeout: float | None = None,
    ) -> watches.AsyncWatch[connection_pb2.Connection]:
        """Stream changes of the connections of `parent`; see `watch_services`."""
        request = consumer_service_pb2.WatchConnectionsRequest(
            parent=parent, filter=filter, send_initial=True
        )
        return self._watch(
            self._consumer.WatchConnections, request, "connection", send_initial, timeout
        )

    # -- AccountService ---------------------------------------------------------------------

    async def register_account(
        self,
        *,
        parent: str,
        account: _requests.AccountLike,
        account_id: str,
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> account_pb2.Account:
        """Register the AWS account `account_id` (12 digits) in `parent`."""
        request = _requests.register_account(parent, account, account_id, request_id, validate_only)
        result: account_pb2.Account = await self._call(
            self._accounts.RegisterAccount, request, timeout
        )
        return result

    async def get_account(self, *, name: str, timeout: float | None = None) -> account_pb2.Account:
        """Return the account `projects/{project}/accounts/{aws_account_id}`."""
        request = account_service_pb2.GetAccountRequest(name=name)
        result: account_pb2.Account = await self._call(self._accounts.GetAccount, request, timeout)
        return result

    def list_accounts(
        self,
        *,
        parent: str,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> pagers.AsyncPager[account_pb2.Account]:
        """Iterate over every account of `parent` matching `filter`, across pages."""
        request = account_service_pb2.ListAccountsRequest(
            parent=parent, filter=filter, page_size=page_size, page_token=page_token
        )
        return self._pager(self._accounts.ListAccounts, request, lambda r: r.accounts, timeout)

    async def update_account(
        self,
        *,
        account: _requests.AccountLike,
        update_mask: _requests.UpdateMask | None = None,
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> account_pb2.Account:
        """Change the account named by `account.name` (role, external id, regions, labels)."""
        request = _requests.update_account(account, update_mask, request_id, validate_only)
        result: account_pb2.Account = await self._call(
            self._accounts.UpdateAccount, request, timeout
        )
        return result

    async def delete_account(
        self,
        *,
        name: str,
        etag: str = "",
        request_id: str | None = None,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Remove an account; `FailedPrecondition` while services or connections use it."""
        request = _requests.delete_account(name, etag, request_id, validate_only)
        await self._call(self._accounts.DeleteAccount, request, timeout)

    async def check_account(
        self,
        *,
        name: str,
        usage: account_service_pb2.CheckAccountRequest.Usage.ValueType = (
            account_service_pb2.CheckAccountRequest.USAGE_UNSPECIFIED
        ),
        region: str = "",
        timeout: float | None = None,
    ) -> account_service_pb2.CheckAccountResponse:
        """Assume the account's role and ask AWS whether it allows each action linkplane calls
        there (DryRun where EC2 has it). Denied actions are results, not errors."""
        request = account_service_pb2.CheckAccountRequest(name=name, usage=usage, region=region)
        result: account_service_pb2.CheckAccountResponse = await self._call(
            self._accounts.CheckAccount, request, timeout
        )
        return result

    # -- google.iam.v1.IAMPolicy on projects ------------------------------------------------

    async def get_iam_policy(
        self, *, resource: str, timeout: float | None = None
    ) -> policy_pb2.Policy:
        """The IAM policy of `resource` (`projects/{project}`): role bindings and etag."""
        request = iam_policy_pb2.GetIamPolicyRequest(resource=resource)
        result: policy_pb2.Policy = await self._call(self._iam.GetIamPolicy, request, timeout)
        return result

    async def set_iam_policy(
        self,
        *,
        resource: str,
        policy: policy_pb2.Policy,
        update_mask: _requests.UpdateMask | None = None,
        timeout: float | None = None,
    ) -> policy_pb2.Policy:
        """Replace the policy of `resource`; `Aborted` when `policy.etag` is stale."""
        request = _requests.set_iam_policy(resource, policy, update_mask)
        result: policy_pb2.Policy = await self._call(self._iam.SetIamPolicy, request, timeout)
        return result

    async def test_iam_permissions(
        self, *, resource: str, permissions: Sequence[str], timeout: float | None = None
    ) -> list[str]:
        """The subset of `permissions` the caller holds on `resource`."""
        request = iam_policy_pb2.TestIamPermissionsRequest(
            resource=resource, permissions=list(permissions)
        )
        response = await self._call(self._iam.TestIamPermissions, request, timeout)
        return list(response.permissions)

    async def add_iam_policy_binding(
        self,
        *,
        resource: str,
        role: str,
        member: str,
        max_attempts: int = 5,
        timeout: float | None = None,
    ) -> policy_pb2.Policy:
        """Grant `role` to `member` (read-modify-write, retried on a concurrent change)."""
        return await self._change_iam_policy(
            resource, lambda p: iam.with_binding(p, role, member), max_attempts, timeout
        )

    async def remove_iam_policy_binding(
        self,
        *,
        resource: str,
        role: str,
        member: str,
        max_attempts: int = 5,
        timeout: float | None = None,
    ) -> policy_pb2.Policy:
        """Revoke `role` from `member`; the policy is unchanged when it was not granted."""
        return await self._change_iam_policy(
            resource, lambda p: iam.without_binding(p, role, member), max_attempts, timeout
        )

    async def _change_iam_policy(
        self,
        resource: str,
        change: Callable[[policy_pb2.Policy], tuple[policy_pb2.Policy, bool]],
        max_attempts: int,
        timeout: float | None,
    ) -> policy_pb2.Policy:
        attempt = 1
        while True:
            current = await self.get_iam_policy(resource=resource, timeout=timeout)
            updated, changed = change(current)
            if not changed:
                return current
            try:
                return await self.set_iam_policy(resource=resource, policy=updated, timeout=timeout)
            except errors.Aborted:
                # Someone else changed the policy in between: apply the change to theirs.
                if attempt >= max_attempts:
                    raise
                attempt += 1

    # -- AuditService -----------------------------------------------------------------------

    def list_audit_events(
        self,
        *,
        parent: str,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> pagers.AsyncPager[audit_event_pb2.AuditEvent]:
        """Iterate over the audit events of `parent`, oldest first, matching `filter`
        (`actor`, `method`, `resource`, `request_id`, `time >= "2026-01-01T00:00:00Z"`)."""
        request = audit_service_pb2.ListAuditEventsRequest(
            parent=parent, filter=filter, page_size=page_size, page_token=page_token
        )
        return self._pager(self._audit.ListAuditEvents, request, lambda r: r.audit_events, timeout)

    # -- google.longrunning.Operations ------------------------------------------------------

    async def get_operation(
        self, *, name: str, timeout: float | None = None
    ) -> AsyncOperation[message.Message | None]:
        """Return a handle on the operation `operations/{id}`."""
        request = operations_pb2.GetOperationRequest(name=name)
        proto = await self._call(self._operations.GetOperation, request, timeout)
        return AsyncOperation[message.Message | None](self, proto)

    def list_operations(
        self,
        *,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> pagers.AsyncPager[AsyncOperation[message.Message | None]]:
        """Iterate over operations matching `filter` (e.g. `done = false`), across pages."""
        request = operations_pb2.ListOperationsRequest(
            name="operations", filter=filter, page_size=page_size, page_token=page_token
        )
        return self._pager(
            self._operations.ListOperations,
            request,
            lambda r: [AsyncOperation[message.Message | None](self, op) for op in r.operations],
            timeout,
        )

    async def wait_operation(
        self, *, name: str, wait: float | None = None, timeout: float | None = None
    ) -> AsyncOperation[message.Message | None]:
        """Block on the server (WaitOperation) up to `wait` seconds; returns the latest state,
        done or not. For waiting with backoff and a result, use `AsyncOperation.result`."""
        request = operations_pb2.WaitOperationRequest(name=name)
        if wait is not None:
            request.timeout.FromNanoseconds(int(wait * 1e9))
        call_timeout = (
            timeout if timeout is not None else max(self.config.default_timeout, (wait or 0) + 5)
        )
        proto = await self._call(self._operations.WaitOperation, request, call_timeout)
        return AsyncOperation[message.Message | None](self, proto)

    async def cancel_operation(self, *, name: str, timeout: float | None = None) -> None:
        """Ask the server to cancel the operation `operations/{id}`."""
        request = operations_pb2.CancelOperationRequest(name=name)
        await self._call(self._operations.CancelOperation, request, timeout)

    async def delete_operation(self, *, name: str, timeout: float | None = None) -> None:
        """Forget a finished operation `operations/{id}`."""
        request = operations_pb2.DeleteOperationRequest(name=name)
        await self._call(self._operations.DeleteOperation, request, timeout)
