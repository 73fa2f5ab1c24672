"""The ORM models: the tables linkplane keeps in Postgres.

Every resource row holds the desired spec (JSONB), its generation, the observed status and the
reconciler's bookkeeping (lease owner and expiry, fencing token, next reconcile time, attempts),
so the reconciler needs no schema of its own. Filterable attributes of the spec are copied into
columns so lists filter and page in SQL.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic autogenerate and hand-written migrations agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        datetime: DateTime(timezone=True),
    }


def _now() -> Any:
    return func.now()


def table_of(model: type[Base]) -> Table:
    """The model's table, typed as one (declarative models type `__table__` as a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class ReconciledMixin:
    """Columns shared by resources a reconciler drives towards their spec."""

    uid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    project: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(63), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spec: Mapped[dict[str, Any]]
    generation: Mapped[int] = mapped_column(BigInteger, default=1)
    observed_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(32))
    reconciling: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[dict[str, Any]] = mapped_column(default=dict)
    revision: Mapped[int] = mapped_column(BigInteger, default=1)
    create_time: Mapped[datetime] = mapped_column(server_default=_now())
    update_time: Mapped[datetime] = mapped_column(server_default=_now())
    delete_time: Mapped[datetime | None] = mapped_column(default=None)
    # Reconciler bookkeeping: who holds the lease until when, a fencing token that increases
    # with every claim (writes check it, so a worker that lost its lease cannot overwrite a
    # newer one), when to look again, and how many attempts failed in a row.
    lease_owner: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    next_reconcile_at: Mapped[datetime] = mapped_column(server_default=_now())
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Account(Base):
    __tablename__ = "accounts"

    uid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    project: Mapped[str] = mapped_column(String(63))
    aws_account_id: Mapped[str] = mapped_column(String(12))
    display_name: Mapped[str] = mapped_column(String(63), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spec: Mapped[dict[str, Any]]
    revision: Mapped[int] = mapped_column(BigInteger, default=1)
    create_time: Mapped[datetime] = mapped_column(server_default=_now())
    update_time: Mapped[datetime] = mapped_column(server_default=_now())
    # Projects (`projects/{id}`) this project's admins allow to register the same AWS account.
    shared_with_projects: Mapped[list[str]] = mapped_column(JSONB, default=list)

    __table_args__ = (Index(None, "project", "name"), Index(None, "aws_account_id"))


class Service(ReconciledMixin, Base):
    __tablename__ = "services"

    provider_account: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(32))
    force_delete: Mapped[bool] = mapped_column(Boolean, default=False)
    # AWS identifiers, copied out of `status` so connections can find their target by them.
    service_id: Mapped[str | None] = mapped_column(String(64), default=None)
    service_name: Mapped[str | None] = mapped_column(String(255), default=None)

    __table_args__ = (
        Index(None, "project", "name"),
        Index(None, "next_reconcile_at"),
        Index(None, "provider_account"),
    )


class Connection(ReconciledMixin, Base):
    __tablename__ = "connections"

    consumer_account: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(32))
    service: Mapped[str] = mapped_column(String(200), default="")
    service_name: Mapped[str] = mapped_column(String(255), default="")
    vpc_id: Mapped[str] = mapped_column(String(32))
    endpoint_id: Mapped[str | None] = mapped_column(String(32), default=None)

    __table_args__ = (
        Index(None, "project", "name"),
        Index(None, "next_reconcile_at"),
        Index(None, "consumer_account"),
        Index(None, "service"),
        Index(None, "endpoint_id"),
    )


class ServiceConnection(Base):
    """What AWS last reported about one endpoint connection to a Service."""

    __tablename__ = "service_connections"

    service_uid: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("services.uid", ondelete="CASCADE"), primary_key=True
    )
    endpoint_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_account_id: Mapped[str] = mapped_column(String(12))
    vpc_id: Mapped[str] = mapped_column(String(32), default="")
    region: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[str] = mapped_column(String(32))
    connection_name: Mapped[str] = mapped_column(String(200), default="")
    request_message: Mapped[str] = mapped_column(Text, default="")
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dns_entries: Mapped[dict[str, Any]] = mapped_column(default=dict)
    create_time: Mapped[datetime | None] = mapped_column(default=None)
    observe_time: Mapped[datetime] = mapped_column(server_default=_now())


class ConnectionDecision(Base):
    """A person's accept/reject request, waiting for (or applied by) the reconciler."""

    __tablename__ = "connection_decisions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    service_uid: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("services.uid", ondelete="CASCADE")
    )
    endpoint_id: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    operation_id: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(server_default=_now())
    applied_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        Index(None, "service_uid", "applied_at"),
        Index(None, "operation_id"),
    )


class Operation(Base):
    """A long-running operation; `done` flips when its resource reaches the target state."""

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(200))
    # The target's project: an operation is visible to whoever may see its project.
    project: Mapped[str] = mapped_column(String(63), default="")
    verb: Mapped[str] = mapped_column(String(32))
    resource_kind: Mapped[str] = mapped_column(String(32))
    resource_uid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    target_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    actor: Mapped[str] = mapped_column(String(200), default="")
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    response: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    progress_message: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    create_time: Mapped[datetime] = mapped_column(server_default=_now())
    update_time: Mapped[datetime] = mapped_column(server_default=_now())
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    # The W3C traceparent of the request that started the operation (migration 0004): the
    # reconcile passes it causes join that request's trace. None when tracing is off.
    trace_context: Mapped[str | None] = mapped_column(String(256), default=None)

    __table_args__ = (
        Index(None, "resource_uid", "done"),
        Index(None, "create_time"),
        Index(None, "project", "id"),
    )


class RequestRecord(Base):
    """A mutating request's `request_id`, kept so a retry replays the first result."""

    __tablename__ = "request_ids"

    method: Mapped[str] = mapped_column(String(100), primary_key=True)
    # Request ids are the caller's: another principal reusing one gets no replay of this one.
    principal: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64))
    operation_id: Mapped[str | None] = mapped_column(String(64), default=None)
    response: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    create_time: Mapped[datetime] = mapped_column(server_default=_now())

    __table_args__ = (Index(None, "create_time"),)


class AuditEntry(Base):
    """Append-only record of every mutation: who, what, when, and the request."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(server_default=_now())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str] = mapped_column(String(250))
    resource_uid: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), default=None)
    request_id: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The project of `resource`, so one project's log is read through an index (migration 0003).
    project: Mapped[str] = mapped_column(String(63), default="", server_default="")

    __table_args__ = (
        Index(None, "resource", "time"),
        Index(None, "time"),
        Index(None, "project", "id"),
    )


class IamPolicy(Base):
    """A project's IAM policy (google.iam.v1.Policy): role bindings; no row means none."""

    __tablename__ = "iam_policies"

    project: Mapped[str] = mapped_column(String(63), primary_key=True)
    # [{"role": "roles/linkplane.viewer", "members": ["user:alice"]}, …]
    bindings: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    revision: Mapped[int] = mapped_column(BigInteger, default=1)
    update_time: Mapped[datetime] = mapped_column(server_default=_now())


class RateBucket(Base):
    """One AWS token bucket (account, Region, action family) shared by every replica.

    ``tokens`` may be negative: each caller reserves its token at once and waits until the
    refill has paid for it, so the deficit is the queue (storage/buckets.py). Capacity and
    refill are written by each caller from its own configuration (migration 0005).
    """

    __tablename__ = "aws_rate_buckets"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(100), primary_key=True)
    capacity: Mapped[float] = mapped_column(Float)
    refill: Mapped[float] = mapped_column(Float)
    tokens: Mapped[float] = mapped_column(Float)
    stamp: Mapped[datetime] = mapped_column()
    """When ``tokens`` was last brought up to date (the database's clock)."""
