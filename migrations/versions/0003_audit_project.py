"""Audit log entries carry their project, so a project's log is read through an index.

AuditService.ListAuditEvents lists one project's entries in id order; matching resource names
by prefix cannot use the (resource, time) index under a non-C collation and scans the table.
`project` is back-filled from the resource name (`projects/{project}/…`); entries of resources
outside a project (none are written today) keep "", which is also the column's default for
writers that do not set it. The append-only trigger is switched off for the back-fill only,
inside this migration's transaction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 06:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "audit_log",
        sa.Column("project", sa.String(length=63), server_default="", nullable=False),
    )
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute(
        "UPDATE audit_log SET project = split_part(resource, '/', 2) "
        "WHERE resource LIKE 'projects/%'"
    )
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    op.create_index(op.f("ix_audit_log_project_id"), "audit_log", ["project", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_project_id"), table_name="audit_log")
    op.drop_column("audit_log", "project")
