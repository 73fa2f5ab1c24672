"""AccountService: registers the AWS accounts linkplane acts in. Answers directly (no AWS).

Tenancy: an AWS account id is registered in one project (the first to register it owns it),
unless an admin of that project lists another project in `shared_with_projects`. Registering it
elsewhere is ALREADY_EXISTS without saying where. The external id is write-only (responses
carry `external_id_set`), stays out of the audit log and the request-id records, and the role
ARN is shown only to the project's admins.

CheckAccount is the one method that calls AWS, at once and read-only: it assumes the account's
role and asks AWS, action by action, whether the role may do what linkplane will do there
(aws/permissions.py), so a missing permission shows up before the first reconcile.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import empty_pb2

from linkplane.server.api import authz, fields, resources, rpc
from linkplane.server.aws import permissions, sessions
from linkplane.server.domain import errors, filters, names, pagination, specs, validation
from linkplane.server.protocol import converters
from linkplane.server.storage import accounts, driver, filtering, models, records, requests
from linkplane.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
WRITABLE = {
    "display_name",
    "role_arn",
    "external_id",
    "allowed_regions",
    "labels",
    "shared_with_projects",
}
OUTPUT_ONLY = {"aws_account_id", "create_time", "update_time", "external_id_set"}
MAX_SHARED_PROJECTS = 100
FILTER_FIELDS = {"display_name", "aws_account_id", "labels"}
DEFAULT_CHECK_REGION = "us-east-1"
_USAGES = {
    account_service_pb2.CheckAccountRequest.USAGE_UNSPECIFIED: tuple(permissions.Variant),
    account_service_pb2.CheckAccountRequest.USAGE_PROVIDER: (permissions.Variant.PROVIDER,),
    account_service_pb2.CheckAccountRequest.USAGE_CONSUMER: (permissions.Variant.CONSUMER,),
}
_RESULTS = {
    permissions.Result.ALLOWED: account_service_pb2.PermissionCheck.RESULT_ALLOWED,
    permissions.Result.DENIED: account_service_pb2.PermissionCheck.RESULT_DENIED,
    permissions.Result.ERROR: account_service_pb2.PermissionCheck.RESULT_ERROR,
    permissions.Result.UNVERIFIED: account_service_pb2.PermissionCheck.RESULT_UNVERIFIED,
}


def check_region(requested: str, allowed: list[str]) -> str:
    """The Region to check in: the requested one (an allowed one), else the first allowed."""
    if not requested:
        return allowed[0] if allowed else DEFAULT_CHECK_REGION
    if not validation.REGION.match(requested):
        raise errors.InvalidArgument(
            [errors.FieldViolation("region", "must be an AWS Region like us-east-1")]
        )
    if allowed and requested not in allowed:
        raise errors.InvalidArgument(
            [
                errors.FieldViolation(
                    "region", f"is not one of the account's allowed_regions {allowed}"
                )
            ]
        )
    return requested


def present(row: models.Account, *, show_role_arn: bool) -> account_pb2.Account:
    """The stored Account as a caller may see it (`shown`)."""
    return shown(
        converters.account(row), row.shared_with_projects or [], show_role_arn=show_role_arn
    )


def shown(
    message: account_pb2.Account, shared_with_projects: list[str], *, show_role_arn: bool
) -> account_pb2.Account:
    """An Account as a caller may see it: never the external id; the role ARN to admins."""
    message.external_id_set = bool(message.external_id)
    message.ClearField("external_id")
    if not show_role_arn:
        message.ClearField("role_arn")
    message.shared_with_projects.extend(shared_with_projects)
    return message


def _registered_at(account: account_pb2.Account, time: datetime) -> account_pb2.Account:
    """The registered Account with its create and update time: those of its registration."""
    account.create_time.FromDatetime(time)
    account.update_time.CopyFrom(account.create_time)
    return account


def audited_spec(spec: specs.AccountSpec) -> dict[str, Any]:
    """The spec for the audit log: whether an external id is set, never its value."""
    data = specs.to_json(spec)
    data["external_id"] = "(set)" if spec.external_id else ""
    return data


def check_shared(values: list[str], own_project: str, path: str) -> list[errors.FieldViolation]:
    out = []
    if len(values) > MAX_SHARED_PROJECTS:
        out.append(errors.FieldViolation(path, f"at most {MAX_SHARED_PROJECTS} projects"))
    for i, value in enumerate(values):
        project = names.parse_parent(value)
        if project is None:
            out.append(errors.FieldViolation(f"{path}[{i}]", "must be projects/{project}"))
        elif project == own_project:
            out.append(errors.FieldViolation(f"{path}[{i}]", "is this account's own project"))
        elif values.index(value) != i:
            out.append(errors.FieldViolation(f"{path}[{i}]", "is listed twice"))
    return out


class AccountServicer(account_service_pb2_grpc.AccountServiceServicer):
    def __init__(self, deps: rpc.Dependencies) -> None:
        self.deps = deps

    async def _shows_role_arn(self, actor: str, project: str) -> bool:
        return await self.deps.authorizer.has(actor, project, authz.SEE_ROLE_ARN)

    @staticmethod
    def _refuse(verdict: accounts.Verdict, name: str, project: str, aws_account_id: str) -> None:
        """ALREADY_EXISTS when the name is taken, or when another project owns the AWS account
        and did not share it (without saying which: `projects/{project}/accounts/{id}`).

        The rule (storage/accounts.py): the owner is the project that registered the account
        first; only its `shared_with_projects` counts; bootstrap administrators (and dev
        mode's local administrator) may register it anywhere. Registrations of one AWS
        account id are serialized, so two projects registering it at once cannot both succeed.
        """
        if verdict.taken:
            raise errors.AlreadyExists(name, kind="account")
        if not verdict.allowed:
            raise errors.AlreadyExists(
                f"projects/{project}/accounts/{aws_account_id}", kind="account"
            )

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
        shared = list(request.account.shared_with_projects)
        violations += check_shared(shared, project, "account.shared_with_projects")
        rpc.check_request_id(request.request_id)
        if violations:
            raise errors.InvalidArgument(violations)
        name = f"projects/{project}/accounts/{request.account_id}"
        anywhere = self.deps.authorizer.is_admin_everywhere(actor)
        if request.validate_only:
            async with driver.autocommit(self.deps.db) as connection:
                verdict = await accounts.check_registration(
                    connection,
                    name=name,
                    project=project,
                    aws_account_id=request.account_id,
                    anywhere=anywhere,
                )
            self._refuse(verdict, name, project, request.account_id)
            return account_pb2.Account(name=name, aws_account_id=request.account_id)
        account = accounts.NewAccount(
            uid=uuid.uuid4(),
            name=name,
            project=project,
            aws_account_id=request.account_id,
            spec=spec,
            shared_with_projects=shared,
        )
        # Registering takes admin rights, which include seeing the role ARN. Its times are the
        # registration's, set below: a replay takes them from the request's record.
        result = shown(converters.account_of(account, spec), shared, show_role_arn=True)
        digest = rpc.request_digest(request) if request.request_id else ""
        registration = accounts.Registration(
            account=account,
            actor=actor,
            anywhere=anywhere,
            audit_details={"spec": audited_spec(spec), "shared_with_projects": shared},
            outcome=rpc.outcome("RegisterAccount", request, response=result.SerializeToString()),
            request_digest=digest,
        )
        async with driver.autocommit(self.deps.db) as connection:
            registered = await accounts.register(connection, registration)
        if registered.earlier is not None:
            return self._replayed(registered.earlier, digest)
        # Refused: nothing was written, and the claimed request id was released.
        self._refuse(registered.verdict, name, project, request.account_id)
        return _registered_at(result, registered.time)

    @staticmethod
    def _replayed(earlier: requests.Replay, digest: str) -> account_pb2.Account:
        rpc.check_replay(earlier, digest)
        if earlier.response is None:  # every registration stores its response with its claim
            raise errors.FailedPrecondition(
                "the first request with this request_id registered nothing"
            )
        return _registered_at(account_pb2.Account.FromString(earlier.response), earlier.time)

    @rpc.unary
    async def GetAccount(
        self, request: account_service_pb2.GetAccountRequest, context: Context, actor: str
    ) -> account_pb2.Account:
        parsed = fields.name_of(request.name, "accounts")
        name = str(parsed)
        show_role_arn = await self._shows_role_arn(actor, parsed.project)
        async with self.deps.db.transaction() as session:
            row = await records.get(session, models.Account, name)
            if row is None:
                raise errors.NotFound(name, kind="account")
            return present(row, show_role_arn=show_role_arn)

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
                columns=filtering.account_columns(),
                after=after,
                limit=size,
            )
        token = pagination.encode(self.deps.page_secret, context_key, rows[-1].name) if more else ""
        show_role_arn = await self._shows_role_arn(actor, project)
        return account_service_pb2.ListAccountsResponse(
            accounts=[present(r, show_role_arn=show_role_arn) for r in rows],
            next_page_token=token,
        )

    @rpc.unary
    async def UpdateAccount(
        self, request: account_service_pb2.UpdateAccountRequest, context: Context, actor: str
    ) -> account_pb2.Account:
        parsed = fields.name_of(request.account.name, "accounts", "account.name")
        name = str(parsed)
        paths = fields.mask_paths(request.update_mask, WRITABLE, OUTPUT_ONLY)
        rpc.check_request_id(request.request_id)
        incoming = converters.account_spec(request.account)
        shared = list(request.account.shared_with_projects)
        if "shared_with_projects" in paths:
            violations = check_shared(shared, parsed.project, "account.shared_with_projects")
            if violations:
                raise errors.InvalidArgument(violations)
        # Write-only: a read-modify-write of the whole resource sends it back empty.
        replace_all = not request.update_mask.paths or list(request.update_mask.paths) == ["*"]
        if replace_all and not incoming.external_id:
            paths.discard("external_id")
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
            for path in paths - {"shared_with_projects"}:
                setattr(spec, path, getattr(incoming, path))
            violations = validation.check_account(spec, "account", row.aws_account_id)
            if violations:
                raise errors.InvalidArgument(violations)
            if request.validate_only:
                return present(row, show_role_arn=True)
            if "shared_with_projects" in paths:
                row.shared_with_projects = shared
            row.spec = specs.to_json(spec)
            row.display_name = spec.display_name
            row.labels = spec.labels
            row.revision += 1
            records.mark_updated(row)
            await records.write_back(session, row)
            result = present(row, show_role_arn=True)
            await resources.record_mutation(
                session,
                method="UpdateAccount",
                request=request,
                actor=actor,
                resource=name,
                resource_uid=row.uid,
                details={
                    "paths": sorted(paths),
                    "spec": audited_spec(spec),
                    "shared_with_projects": list(row.shared_with_projects or []),
                },
                response=result.SerializeToString(),
            )
            return result

    @rpc.unary
    async def CheckAccount(
        self, request: account_service_pb2.CheckAccountRequest, context: Context, actor: str
    ) -> account_service_pb2.CheckAccountResponse:
        name = str(fields.name_of(request.name, "accounts"))
        variants = _USAGES.get(request.usage)
        if variants is None:
            raise errors.InvalidArgument(
                [errors.FieldViolation("usage", f"unknown value {request.usage}")]
            )
        async with self.deps.db.transaction() as session:
            row = await records.get(session, models.Account, name)
            if row is None:
                raise errors.NotFound(name, kind="account")
        spec = specs.account_from_json(row.spec)
        region = check_region(request.region, list(spec.allowed_regions))
        if self.deps.aws is None:
            raise errors.FailedPrecondition(
                "this server process has no AWS access configured",
                reason="AWS_NOT_CONFIGURED",
                metadata={"name": name},
            )
        account = sessions.AccountRef(
            account_id=row.aws_account_id,
            role_arn=spec.role_arn or None,
            external_id=spec.external_id or None,
        )
        report = await permissions.check(self.deps.aws.context(account, region), variants)
        return account_service_pb2.CheckAccountResponse(
            name=name,
            region=region,
            caller_arn=report.caller_arn,
            checks=[
                account_service_pb2.PermissionCheck(
                    action=o.action, result=_RESULTS[o.result], message=o.message
                )
                for o in report.outcomes
            ],
        )

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
            users = await accounts.users(session, name)
            if users:
                raise errors.FailedPrecondition(
                    f"account {name} is used by {users} services or connections; delete them first",
                    reason="ACCOUNT_IN_USE",
                    metadata={"name": name, "users": str(users)},
                )
            if request.validate_only:
                return empty_pb2.Empty()
            await records.remove(session, row)
            await resources.record_mutation(
                session,
                method="DeleteAccount",
                request=request,
                actor=actor,
                resource=name,
                resource_uid=row.uid,
            )
            return empty_pb2.Empty()
