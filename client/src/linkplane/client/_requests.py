"""Builders of the request messages, shared by `AsyncClient` and `Client`.

Both clients take the same keyword arguments; building the request in one place keeps their
behaviour identical, in particular the rule that `request_id` is generated once, here, before
the first attempt, so every retry of the same call carries the same idempotency key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import field_mask_pb2, json_format, message

from linkplane.v1 import (
    account_pb2,
    account_service_pb2,
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)

MessageT = TypeVar("MessageT", bound=message.Message)

ServiceLike = service_pb2.Service | Mapping[str, Any]
"""A `Service` message, or a dict in its proto3 JSON form (camelCase or snake_case keys)."""
ConnectionLike = connection_pb2.Connection | Mapping[str, Any]
"""A `Connection` message, or a dict in its proto3 JSON form."""
AccountLike = account_pb2.Account | Mapping[str, Any]
"""An `Account` message, or a dict in its proto3 JSON form."""
UpdateMask = str | Sequence[str]
"""Field-mask paths: a list (`["labels", "display_name"]`) or the comma-separated string form
that FieldMask's JSON mapping and `gcloud --update-mask` use (`"labels,display_name"`)."""


def coerce(message_type: type[MessageT], value: MessageT | Mapping[str, Any]) -> MessageT:
    """Accept a message or its JSON-shaped dict; unknown dict keys are an error, not ignored."""
    if isinstance(value, message_type):
        return value
    return json_format.ParseDict(dict(value), message_type())  # type: ignore[arg-type]


def request_id(value: str | None) -> str:
    """The caller's idempotency key, or a fresh UUID4."""
    return value if value is not None else str(uuid.uuid4())


def field_mask(paths: UpdateMask | None) -> field_mask_pb2.FieldMask | None:
    """A FieldMask of `paths`; None leaves the mask unset (every writable field).

    A string is split on commas (a str is also a Sequence[str], so without this "a,b" would
    silently become the paths "a", ",", "b"); blanks around the commas are ignored.
    """
    if paths is None:
        return None
    if isinstance(paths, str):
        return field_mask_pb2.FieldMask(paths=[p.strip() for p in paths.split(",") if p.strip()])
    return field_mask_pb2.FieldMask(paths=list(paths))


def publish_service(
    parent: str, service: ServiceLike, service_id: str, rid: str | None, validate_only: bool
) -> provider_service_pb2.PublishServiceRequest:
    """PublishServiceRequest."""
    return provider_service_pb2.PublishServiceRequest(
        parent=parent,
        service=coerce(service_pb2.Service, service),
        service_id=service_id,
        request_id=request_id(rid),
        validate_only=validate_only,
    )


def update_service(
    service: ServiceLike, mask: UpdateMask | None, rid: str | None, validate_only: bool
) -> provider_service_pb2.UpdateServiceRequest:
    """UpdateServiceRequest."""
    return provider_service_pb2.UpdateServiceRequest(
        service=coerce(service_pb2.Service, service),
        update_mask=field_mask(mask),
        request_id=request_id(rid),
        validate_only=validate_only,
    )


def delete_service(
    name: str, etag: str, force: bool, rid: str | None, validate_only: bool
) -> provider_service_pb2.DeleteServiceRequest:
    """DeleteServiceRequest."""
    return provider_service_pb2.DeleteServiceRequest(
        name=name, etag=etag, force=force, request_id=request_id(rid), validate_only=validate_only
    )


def verify_service_private_dns(
    name: str, etag: str, rid: str | None, validate_only: bool
) -> provider_service_pb2.VerifyServicePrivateDnsRequest:
    """VerifyServicePrivateDnsRequest."""
    return provider_service_pb2.VerifyServicePrivateDnsRequest(
        name=name, etag=etag, request_id=request_id(rid), validate_only=validate_only
    )


def accept_service_connections(
    service: str, endpoint_ids: Sequence[str], reason: str, rid: str | None, validate_only: bool
) -> provider_service_pb2.AcceptServiceConnectionsRequest:
    """AcceptServiceConnectionsRequest."""
    return provider_service_pb2.AcceptServiceConnectionsRequest(
        service=service,
        endpoint_ids=list(endpoint_ids),
        reason=reason,
        request_id=request_id(rid),
        validate_only=validate_only,
    )


def reject_service_connections(
    service: str, endpoint_ids: Sequence[str], reason: str, rid: str | None, validate_only: bool
) -> provider_service_pb2.RejectServiceConnectionsRequest:
    """RejectServiceConnectionsRequest."""
    return provider_service_pb2.RejectServiceConnectionsRequest(
        service=service,
        endpoint_ids=list(endpoint_ids),
        reason=reason,
        request_id=request_id(rid),
        validate_only=validate_only,
    )


def create_connection(
    parent: str,
    connection: ConnectionLike,
    connection_id: str,
    rid: str | None,
    validate_only: bool,
) -> consumer_service_pb2.CreateConnectionRequest:
    """CreateConnectionRequest."""
    return consumer_service_pb2.CreateConnectionRequest(
        parent=parent,
        connection=coerce(connection_pb2.Connection, connection),
        connection_id=connection_id,
        request_id=request_id(rid),
        validate_only=validate_only,
    )


def update_connection(
    connection: ConnectionLike, mask: UpdateMask | None, rid: str | None, validate_only: bool
) -> consumer_service_pb2.UpdateConnectionRequest:
    """UpdateConnectionRequest."""
    return consumer_service_pb2.UpdateConnectionRequest(
        connection=coerce(connection_pb2.Connection, connection),
        update_mask=field_mask(mask),
        request_id=request_id(rid),
        validate_only=validate_only,
    )


def delete_connection(
    name: str, etag: str, rid: str | None, validate_only: bool
) -> consumer_service_pb2.DeleteConnectionRequest:
    """DeleteConnectionRequest."""
    return consumer_service_pb2.DeleteConnectionRequest(
        name=name, etag=etag, request_id=request_id(rid), validate_only=validate_only
    )


def register_account(
    parent: str, account: AccountLike, account_id: str, rid: str | None, validate_only: bool
) -> account_service_pb2.RegisterAccountRequest:
    """RegisterAccountRequest."""
    return account_service_pb2.RegisterAccountRequest(
        parent=parent,
        account=coerce(account_pb2.Account, account),
        account_id=account_id,
        request_id=request_id(rid),
        validate_only=validate_only,
    )


def update_account(
    account: AccountLike, mask: UpdateMask | None, rid: str | None, validate_only: bool
) -> account_service_pb2.UpdateAccountRequest:
    """UpdateAccountRequest."""
    return account_service_pb2.UpdateAccountRequest(
        account=coerce(account_pb2.Account, account),
        update_mask=field_mask(mask),
        request_id=request_id(rid),
        validate_only=validate_only,
    )


def delete_account(
    name: str, etag: str, rid: str | None, validate_only: bool
) -> account_service_pb2.DeleteAccountRequest:
    """DeleteAccountRequest."""
    return account_service_pb2.DeleteAccountRequest(
        name=name, etag=etag, request_id=request_id(rid), validate_only=validate_only
    )


def set_iam_policy(
    resource: str, policy: policy_pb2.Policy, mask: UpdateMask | None
) -> iam_policy_pb2.SetIamPolicyRequest:
    """SetIamPolicyRequest (the mask defaults to the server's: bindings and etag)."""
    return iam_policy_pb2.SetIamPolicyRequest(
        resource=resource, policy=policy, update_mask=field_mask(mask)
    )
