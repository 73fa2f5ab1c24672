"""AccountService: registers the AWS accounts linkplane acts in. Answers directly (no AWS)."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from google.protobuf import empty_pb2
from sqlalchemy import func, or_

from linkplane.server.api import fields, rpc
from linkplane.server.domain import errors, filters, names, pagination, specs, validation
from linkplane.server.protocol import converters
from linkplane.server.storage import audit, models, records
from linkplane.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
WRITABLE = {"display_name", "role_arn", "external_id", "allowed_regions", "labels"}
OUTPUT_ONLY = {"aws_account_id", "create_time", "update_time"}
FILTER_FIELDS = {"display_name", "aws_account_id", "labels"}


def _columns() -> dict[str, Any]:
    return {
        "display_name": models.Account.display_name,
        "aws_account_id": models.Account.aws_account_id,
        "labels": models.Account.labels,
    }


class AccountServicer(account_service_pb2_grpc.AccountServiceServicer):
    def __init__(self, deps: rpc.Dependencies) -> None:
        self.deps = deps

    @rpc.unary
    async def RegisterAccount(
        self, request: account_service_pb2.RegisterAccountRequest, context: Context, actor: str
    ) -> account_pb2.Account:
        project = fields.project_of(request.parent)
        violations: list[errors.FieldViolation] = []
        if not names.AWS_ACCOUNT_ID.match(request.account_id):
            violations.append(
                errors.FieldViolation("account_id", "must be a 12-digit AWS account id")
            )
        if not request.HasField("account"):
            violations.append(errors.FieldViolation("account", "is required"))
        spec = converters.account_spec(request.account)
        violations += validation.check_account(spec, "account", request.account_id)
        rpc.check_request_id(request.request_id)
        if violations:
            raise errors.InvalidArgument(violations)
        name = f"projects/{project}/accounts/{request.account_id}"
        async with self.deps.db.transaction() as session:
            if request.validate_only:
                if await records.get(session, models.Account, name) is not None:
                    raise errors.AlreadyExists(name, kind="account")
                return account_pb2.Account(name=name, aws_account_id=request.account_id)
            earlier = await rpc.replay(session, "RegisterAccount", request)
            if earlier is not None and earlier.response is not None:
                return account_pb2.Account.FromString(earlier.response)
            if await records.get(session, models.Account, name) is not None:
                raise errors.AlreadyExists(name, kind="account")
            row = models.Account(
                uid=uuid.uuid4(),
                name=name,
                project=project,
                aws_account_id=request.account_id,
                display_name=spec.display_name,
                labels=spec.labels,
                spec=specs.to_json(spec),
                revision=1,
            )
            session.add(row)
            await session.flush()
            await session.refresh(row)
            result = converters.account(row)
            await audit.record(
                session,
                actor=actor,
                action="RegisterAccount",
                resource=name,
                resource_uid=row.uid,
                request_id=request.request_id,
                details={"spec": specs.to_json(spec)},
            )
            await rpc.remember(
                session, "RegisterAccount", request, response=result.SerializeToString()
            )
            return result

    @rpc.unary
    async def GetAccount(
        self, request: account_service_pb2.GetAccountRequest, context: Context, actor: str
    ) -> account_pb2.Account:
        name = str(fields.name_of(request.name, "accounts"))
        async with self.deps.db.transaction() as session:
            row = await records.get(session, models.Account, name)
            if row is None:
                raise errors.NotFound(name, kind="account")
            return converters.account(row)

    @rpc.unary
    async def ListAccounts(
        self, request: account_service_pb2.ListAccountsRequest, context: Context, actor: str
    ) -> account_service_pb2.ListAccountsResponse:
        project = fields.project_of(request.parent)
        size = pagination.page_size(request.page_size)
        node = filters.parse(request.filter, fields=FILTER_FIELDS)
        context_key = [request.parent, request.filter]
        after = pagination.decode(self.deps.page_secret, context_key, request.page_token)
        async with self.deps.db.transaction() as session:
            rows, more = await records.page(
                session,
                models.Account,
                project=project,
                node=node,
                columns=_columns(),
                after=after,
                limit=size,
            )
        token = pagination.encode(self.deps.page_secret, context_key, rows[-1].name) if more else ""
        return account_service_pb2.ListAccountsResponse(
            accounts=[converters.account(r) for r in rows], next_page_token=token
        )

    @rpc.unary
    async def UpdateAccount(
        self, request: account_service_pb2.UpdateAccountRequest, context: Context, actor: str
    ) -> account_pb2.Account:
        name = str(fields.name_of(request.account.name, "accounts", "account.name"))
        paths = fields.mask_paths(request.update_mask, WRITABLE, OUTPUT_ONLY)
        rpc.check_request_id(request.request_id)
        incoming = converters.account_spec(request.account)
        async with self.deps.db.transaction() as session:
            earlier = (
                None
                if request.validate_only
                else await rpc.replay(session, "UpdateAccount", request)
            )
            if earlier is not None and earlier.response is not None:
                return account_pb2.Account.FromString(earlier.response)
            row = await records.get(session, models.Account, name, for_update=True)
            if row is None:
                raise errors.NotFound(name, kind="account")
            fields.check_etag(request.account.etag, row.uid, row.revision, name)
            spec = specs.account_from_json(row.spec)
            for path in paths:
                setattr(spec, path, getattr(incoming, path))
            violations = validation.check_account(spec, "account", row.aws_account_id)
            if violations:
                raise errors.InvalidArgument(violations)
            if request.validate_only:
                return converters.account(row)
            row.spec = specs.to_json(spec)
            row.display_name = spec.display_name
            row.labels = spec.labels
            row.revision += 1
            row.update_time = func.now()
            await session.flush()
            await session.refresh(row)
            result = converters.account(row)
            await audit.record(
                session,
                actor=actor,
                action="UpdateAccount",
                resource=name,
                resource_uid=row.uid,
                request_id=request.request_id,
                details={"paths": sorted(paths), "spec": specs.to_json(spec)},
            )
            await rpc.remember(
                session, "UpdateAccount", request, response=result.SerializeToString()
            )
            return result

    @rpc.unary
    async def DeleteAccount(
        self, request: account_service_pb2.DeleteAccountRequest, context: Context, actor: str
    ) -> empty_pb2.Empty:
        name = str(fields.name_of(request.name, "accounts"))
        rpc.check_request_id(request.request_id)
        async with self.deps.db.transaction() as session:
            earlier = (
                None
                if request.validate_only
                else await rpc.replay(session, "DeleteAccount", request)
            )
            if earlier is not None:
                return empty_pb2.Empty()
            row = await records.get(session, models.Account, name, for_update=True)
            if row is None:
                raise errors.NotFound(name, kind="account")
            fields.check_etag(request.etag, row.uid, row.revision, name)
            users = await records.count_where(
                session, models.Service, models.Service.provider_account == name
            ) + await records.count_where(
                session, models.Connection, or_(models.Connection.consumer_account == name)
            )
            if users:
                raise errors.FailedPrecondition(
                    f"account {name} is used by {users} services or connections; delete them first",
                    reason="ACCOUNT_IN_USE",
                    metadata={"name": name, "users": str(users)},
                )
            if request.validate_only:
                return empty_pb2.Empty()
            await session.delete(row)
            await audit.record(
                session,
                actor=actor,
                action="DeleteAccount",
                resource=name,
                resource_uid=row.uid,
                request_id=request.request_id,
            )
            await rpc.remember(session, "DeleteAccount", request)
            return empty_pb2.Empty()
