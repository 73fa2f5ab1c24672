"""AuditService: reads a project's append-only audit log (storage/audit.py).

Entries are written by the servicers and reconcilers in the transactions of the changes they
describe; this service only lists them, filtered with the AIP-160 subset (`time` also takes
`<`, `<=`, `>`, `>=`) and paged with the same signed tokens as every other list.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import struct_pb2

from linkplane.server.api import fields, rpc
from linkplane.server.domain import errors, filters, pagination
from linkplane.server.protocol import converters
from linkplane.server.storage import audit, models
from linkplane.v1 import audit_event_pb2, audit_service_pb2, audit_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
FILTER_FIELDS = frozenset({"resource", "actor", "method", "request_id", "time"})
ORDERED_FIELDS = frozenset({"time"})


def changed_fields(entry: models.AuditEntry) -> list[str]:
    """The fields a change set or modified, from what its writer recorded.

    Updates record their mask (`paths`) and whether anything changed; creations record the new
    spec, whose non-empty fields are the ones set; IAM changes record added and removed
    bindings. Deletions and custom methods change no field of their own.
    """
    details = entry.details or {}
    explicit = details.get("changed_fields")
    if isinstance(explicit, list):
        return [str(path) for path in explicit]
    if isinstance(details.get("paths"), list):
        return [] if details.get("changed") is False else [str(p) for p in details["paths"]]
    if entry.action == "SetIamPolicy":
        return ["bindings"] if details.get("added") or details.get("removed") else []
    spec = details.get("spec")
    if isinstance(spec, dict):
        return sorted(key for key, value in spec.items() if value not in (None, "", [], {}))
    return []


def to_message(entry: models.AuditEntry, project: str) -> audit_event_pb2.AuditEvent:
    details = struct_pb2.Struct()
    details.update(entry.details or {})
    return audit_event_pb2.AuditEvent(
        name=f"projects/{project}/auditEvents/{entry.id}",
        time=converters.timestamp(entry.time),
        actor=entry.actor,
        method=entry.action,
        resource=entry.resource,
        resource_uid=str(entry.resource_uid) if entry.resource_uid else "",
        request_id=entry.request_id,
        changed_fields=changed_fields(entry),
        details=details,
    )


class AuditServicer(audit_service_pb2_grpc.AuditServiceServicer):
    def __init__(self, deps: rpc.Dependencies) -> None:
        self.deps = deps

    @rpc.unary
    async def ListAuditEvents(
        self, request: audit_service_pb2.ListAuditEventsRequest, context: Context, actor: str
    ) -> audit_service_pb2.ListAuditEventsResponse:
        project = fields.project_of(request.parent)
        size = pagination.page_size(request.page_size)
        node = filters.parse(request.filter, fields=FILTER_FIELDS, ordered=ORDERED_FIELDS)
        key = [request.parent, request.filter]
        after = _sequence(pagination.decode(self.deps.page_secret, key, request.page_token))
        async with self.deps.db.transaction() as session:
            rows, more = await audit.page(
                session, project=project, node=node, after=after, limit=size
            )
            events = [to_message(row, project) for row in rows]
        token = pagination.encode(self.deps.page_secret, key, str(rows[-1].id)) if more else ""
        return audit_service_pb2.ListAuditEventsResponse(audit_events=events, next_page_token=token)


def _sequence(after: str | None) -> int | None:
    """The entry id a page token resumes after (the token is signed, so this is ours)."""
    if after is None:
        return None
    if not after.isdigit():
        raise errors.InvalidArgument(
            [errors.FieldViolation("page_token", "is not a token from this list")]
        )
    return int(after)
