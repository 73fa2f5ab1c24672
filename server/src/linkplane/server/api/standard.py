"""The standard methods (AIP-131..135) shared by Services and Connections.

Both resources are reconciled, versioned and named alike, so Get, List, Update, Watch and the
closing steps of every mutation (Operation, audit entry, request-id record, "look now") are
written once here; each servicer describes its resource with a `Kind` and keeps only what is
its own (references to check, delete preconditions, custom methods).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from linkplane.server.api import fields, resources, rpc, watches
from linkplane.server.domain import errors, filters, pagination, specs
from linkplane.server.protocol import converters
from linkplane.server.storage import leases, reads, records
from linkplane.server.storage.database import Session


@dataclass(frozen=True)
class Kind:
    """How one reconciled resource kind is named, converted, validated and filtered."""

    name: str  # "service", also the change-feed kind
    collection: str  # "services"
    field: str  # the request field holding the resource, and the violation prefix
    model: Any
    to_message: Callable[[Any], Message]
    spec_of: Callable[[Any], Any]
    load_spec: Callable[[dict[str, Any]], Any]
    check: Callable[[Any, str], list[errors.FieldViolation]]
    writable: frozenset[str]
    immutable: frozenset[str]
    output_only: frozenset[str]
    filter_fields: frozenset[str]
    filter_enums: Mapping[str, Collection[str]]
    columns: Callable[[], dict[str, Any]]
    recreate_hint: str  # what to do instead of changing an immutable field
    state_on_update: Callable[[str], str]
    # The message of a storage/reads.py row, from protocol/cached.py's cache when unchanged.
    from_read: Callable[[Any], Message]


async def get(deps: rpc.Dependencies, kind: Kind, name: str) -> Message:
    resource = str(fields.name_of(name, kind.collection))
    row = await reads.get(deps.db, kind.model, resource)
    if row is None:
        raise errors.NotFound(resource, kind=kind.name)
    return kind.from_read(row)


async def list_page(
    deps: rpc.Dependencies,
    kind: Kind,
    *,
    parent: str,
    page_size: int,
    page_token: str,
    filter_text: str,
) -> tuple[list[Any], str]:
    project = fields.project_of(parent)
    size = pagination.page_size(page_size)
    node = filters.parse(filter_text, fields=kind.filter_fields, enums=kind.filter_enums)
    key = [parent, filter_text]
    after = pagination.decode(deps.page_secret, key, page_token)
    rows, more = await reads.page(
        deps.db,
        kind.model,
        project=project,
        node=node,
        columns=kind.columns(),
        after=after,
        limit=size,
    )
    messages = [kind.from_read(r) for r in rows]
    token = pagination.encode(deps.page_secret, key, rows[-1].name) if more else ""
    return messages, token


def watcher(
    deps: rpc.Dependencies, kind: Kind, *, parent: str, filter_text: str
) -> watches.Watcher:
    project = fields.project_of(parent)
    node = filters.parse(filter_text, fields=kind.filter_fields, enums=kind.filter_enums)
    return watches.Watcher(
        hub=deps.hub,
        kind=watches.WatchKind(
            name=kind.name, model=kind.model, convert=kind.to_message, columns=kind.columns()
        ),
        project=project,
        node=node,
    )


async def conclude(
    session: Session,
    *,
    kind: Kind,
    row: Any,
    verb: str,
    method: str,
    request: Message,
    actor: str,
    progress: str,
    details: dict[str, Any] | None = None,
) -> operations_pb2.Operation:
    """The end of every mutation, in its transaction: Operation, audit, request-id record."""
    operation = await resources.start_operation(
        session,
        target=row.name,
        verb=verb,
        kind=kind.name,
        uid=row.uid,
        generation=row.generation,
        actor=actor,
        progress=progress,
    )
    await resources.record_mutation(
        session,
        method=method,
        request=request,
        actor=actor,
        resource=row.name,
        resource_uid=row.uid,
        details=details,
        operation_id=operation.name.split("/")[1],
    )
    return operation


def touch(row: Any) -> None:
    """A change the reconciler must look at now, and that moves the etag."""
    row.reconciling = True
    row.next_reconcile_at = leases.poke_time()
    row.revision += 1
    records.mark_updated(row)


def mark_deleting(row: Any) -> None:
    if row.delete_time is None:
        records.mark_deleted(row)
    row.state = "DELETING"
    touch(row)


async def update(
    deps: rpc.Dependencies,
    kind: Kind,
    *,
    request: Any,
    resource: Any,
    mask: field_mask_pb2.FieldMask,
    actor: str,
    method: str,
) -> operations_pb2.Operation:
    """Apply the masked fields, bump the generation if the spec changed, return an Operation."""
    name = str(fields.name_of(resource.name, kind.collection, f"{kind.field}.name"))
    paths = fields.mask_paths(mask, kind.writable, kind.output_only, immutable=kind.immutable)
    rpc.check_request_id(request.request_id)
    validate_only = bool(request.validate_only)
    incoming = kind.spec_of(resource)
    async with deps.db.transaction() as session:
        if not validate_only:
            earlier = await rpc.replay(session, method, request)
            if earlier is not None:
                return await resources.replayed_operation(session, earlier.operation_id)
        row = await records.get(session, kind.model, name, for_update=True)
        if row is None:
            raise errors.NotFound(name, kind=kind.name)
        fields.check_etag(resource.etag, row.uid, row.revision, name)
        if row.delete_time is not None:
            raise errors.FailedPrecondition(
                f"{kind.name} {name} is being deleted",
                reason="RESOURCE_DELETING",
                metadata={"name": name},
            )
        spec = kind.load_spec(row.spec)
        # With an explicit mask an immutable field must keep its value; with `*` or no mask
        # an empty value means "not sent" rather than "change to empty".
        explicit = bool(mask.paths) and list(mask.paths) != ["*"]
        immutable_changes = [
            errors.FieldViolation(f"{kind.field}.{p}", f"is immutable; {kind.recreate_hint}")
            for p in sorted(paths & kind.immutable)
            if getattr(incoming, p) != getattr(spec, p) and (explicit or getattr(incoming, p))
        ]
        if immutable_changes:
            raise errors.InvalidArgument(immutable_changes)
        for path in paths - kind.immutable:
            setattr(spec, path, getattr(incoming, path))
        violations = kind.check(spec, kind.field)
        if violations:
            raise errors.InvalidArgument(violations)
        changed = specs.to_json(spec) != row.spec
        if validate_only:
            would_be = _would_be(kind, row, spec) if changed else row
            return resources.preview(converters.pack(kind.to_message(would_be)), name, "update")
        if changed:
            row.spec = specs.to_json(spec)
            row.display_name = spec.display_name
            row.labels = spec.labels
            row.generation += 1
            row.state = kind.state_on_update(row.state)
            touch(row)
        await records.write_back(session, row)
        return await conclude(
            session,
            kind=kind,
            row=row,
            verb="update",
            method=method,
            request=request,
            actor=actor,
            progress="waiting for a worker to apply the change" if changed else "no change",
            details={"paths": sorted(paths), "changed": changed, "spec": specs.to_json(spec)},
        )


def _would_be(kind: Kind, row: Any, spec: Any) -> Any:
    """A detached copy of `row` as the update would leave it (for validate_only): the new
    spec, generation and state; nothing is written."""
    copy = records.detached_copy(kind.model, row)
    copy.spec = specs.to_json(spec)
    copy.display_name = spec.display_name
    copy.labels = spec.labels
    copy.generation = row.generation + 1
    copy.state = kind.state_on_update(row.state)
    copy.reconciling = True
    copy.revision = row.revision + 1
    return copy
