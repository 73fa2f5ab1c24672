"""Initial schema: accounts, services, connections, operations, request ids, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 11:13:58.344590
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("uid", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("aws_account_id", sa.String(length=12), nullable=False),
        sa.Column("display_name", sa.String(length=63), nullable=False),
        sa.Column("labels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
    )
    op.create_index(op.f("ix_accounts_project_name"), "accounts", ["project", "name"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("resource", sa.String(length=250), nullable=False),
        sa.Column("resource_uid", sa.UUID(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        op.f("ix_audit_log_resource_time"), "audit_log", ["resource", "time"], unique=False
    )
    op.create_index(op.f("ix_audit_log_time"), "audit_log", ["time"], unique=False)
    op.create_table(
        "connections",
        sa.Column("consumer_account", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("service_name", sa.String(length=255), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=True),
        sa.Column("uid", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("display_name", sa.String(length=63), nullable=False),
        sa.Column("labels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("observed_generation", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reconciling", sa.Boolean(), nullable=False),
        sa.Column("status", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delete_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column(
            "next_reconcile_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_connections")),
        sa.UniqueConstraint("name", name=op.f("uq_connections_name")),
    )
    op.create_index(
        op.f("ix_connections_consumer_account"), "connections", ["consumer_account"], unique=False
    )
    op.create_index(
        op.f("ix_connections_endpoint_id"), "connections", ["endpoint_id"], unique=False
    )
    op.create_index(
        op.f("ix_connections_next_reconcile_at"), "connections", ["next_reconcile_at"], unique=False
    )
    op.create_index(
        op.f("ix_connections_project_name"), "connections", ["project", "name"], unique=False
    )
    op.create_index(op.f("ix_connections_service"), "connections", ["service"], unique=False)
    op.create_table(
        "operations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("verb", sa.String(length=32), nullable=False),
        sa.Column("resource_kind", sa.String(length=32), nullable=False),
        sa.Column("resource_uid", sa.UUID(), nullable=False),
        sa.Column("target_generation", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("progress_message", sa.Text(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    op.create_index(op.f("ix_operations_create_time"), "operations", ["create_time"], unique=False)
    op.create_index(
        op.f("ix_operations_resource_uid_done"),
        "operations",
        ["resource_uid", "done"],
        unique=False,
    )
    op.create_table(
        "request_ids",
        sa.Column("method", sa.String(length=100), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("operation_id", sa.String(length=64), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("method", "request_id", name=op.f("pk_request_ids")),
    )
    op.create_index(
        op.f("ix_request_ids_create_time"), "request_ids", ["create_time"], unique=False
    )
    op.create_table(
        "services",
        sa.Column("provider_account", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("force_delete", sa.Boolean(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=True),
        sa.Column("service_name", sa.String(length=255), nullable=True),
        sa.Column("uid", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("display_name", sa.String(length=63), nullable=False),
        sa.Column("labels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("observed_generation", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reconciling", sa.Boolean(), nullable=False),
        sa.Column("status", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delete_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column(
            "next_reconcile_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_services")),
        sa.UniqueConstraint("name", name=op.f("uq_services_name")),
    )
    op.create_index(
        op.f("ix_services_next_reconcile_at"), "services", ["next_reconcile_at"], unique=False
    )
    op.create_index(op.f("ix_services_project_name"), "services", ["project", "name"], unique=False)
    op.create_index(
        op.f("ix_services_provider_account"), "services", ["provider_account"], unique=False
    )
    op.create_table(
        "connection_decisions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("service_uid", sa.UUID(), nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("operation_id", sa.String(length=64), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_uid"],
            ["services.uid"],
            name=op.f("fk_connection_decisions_service_uid_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_decisions")),
    )
    op.create_index(
        op.f("ix_connection_decisions_operation_id"),
        "connection_decisions",
        ["operation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_connection_decisions_service_uid_applied_at"),
        "connection_decisions",
        ["service_uid", "applied_at"],
        unique=False,
    )
    op.create_table(
        "service_connections",
        sa.Column("service_uid", sa.UUID(), nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=False),
        sa.Column("owner_account_id", sa.String(length=12), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("connection_name", sa.String(length=200), nullable=False),
        sa.Column("request_message", sa.Text(), nullable=False),
        sa.Column("decision", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dns_entries", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "observe_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["service_uid"],
            ["services.uid"],
            name=op.f("fk_service_connections_service_uid_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_uid", "endpoint_id", name=op.f("pk_service_connections")),
    )

    # The audit log is append-only by the database's own rule, not by convention.
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
        BEGIN
          RAISE EXCEPTION 'audit_log is append-only';
        END;
        $$ LANGUAGE plpgsql;
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_table("service_connections")
    op.drop_index(
        op.f("ix_connection_decisions_service_uid_applied_at"), table_name="connection_decisions"
    )
    op.drop_index(op.f("ix_connection_decisions_operation_id"), table_name="connection_decisions")
    op.drop_table("connection_decisions")
    op.drop_index(op.f("ix_services_provider_account"), table_name="services")
    op.drop_index(op.f("ix_services_project_name"), table_name="services")
    op.drop_index(op.f("ix_services_next_reconcile_at"), table_name="services")
    op.drop_table("services")
    op.drop_index(op.f("ix_request_ids_create_time"), table_name="request_ids")
    op.drop_table("request_ids")
    op.drop_index(op.f("ix_operations_resource_uid_done"), table_name="operations")
    op.drop_index(op.f("ix_operations_create_time"), table_name="operations")
    op.drop_table("operations")
    op.drop_index(op.f("ix_connections_service"), table_name="connections")
    op.drop_index(op.f("ix_connections_project_name"), table_name="connections")
    op.drop_index(op.f("ix_connections_next_reconcile_at"), table_name="connections")
    op.drop_index(op.f("ix_connections_endpoint_id"), table_name="connections")
    op.drop_index(op.f("ix_connections_consumer_account"), table_name="connections")
    op.drop_table("connections")
    op.drop_index(op.f("ix_audit_log_time"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_resource_time"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_accounts_project_name"), table_name="accounts")
    op.drop_table("accounts")
