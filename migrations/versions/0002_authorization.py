"""Authorization and tenancy: IAM policies, operation projects, per-principal request ids,
account sharing.

- `iam_policies`: one google.iam.v1 policy per project (bindings as JSONB, revision for etags).
- `operations.project`: the project of the operation's target, so listing and reading
  operations can be limited to the projects a caller may see (back-filled from `target`).
- `request_ids.principal` joins the primary key: a request id is the caller's own; another
  principal reusing it neither replays nor blocks the first caller's request.
- `accounts.shared_with_projects`: projects allowed to register the same AWS account.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "iam_policies",
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("bindings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("project", name=op.f("pk_iam_policies")),
    )

    op.add_column(
        "operations",
        sa.Column("project", sa.String(length=63), server_default="", nullable=False),
    )
    op.execute("UPDATE operations SET project = split_part(target, '/', 2)")
    op.alter_column("operations", "project", server_default=None)
    op.create_index(op.f("ix_operations_project_id"), "operations", ["project", "id"], unique=False)

    op.add_column(
        "request_ids",
        sa.Column("principal", sa.String(length=200), server_default="", nullable=False),
    )
    op.alter_column("request_ids", "principal", server_default=None)
    op.drop_constraint("pk_request_ids", "request_ids", type_="primary")
    op.create_primary_key("pk_request_ids", "request_ids", ["method", "principal", "request_id"])

    op.add_column(
        "accounts",
        sa.Column(
            "shared_with_projects",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.alter_column("accounts", "shared_with_projects", server_default=None)
    op.create_index(
        op.f("ix_accounts_aws_account_id"), "accounts", ["aws_account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_accounts_aws_account_id"), table_name="accounts")
    op.drop_column("accounts", "shared_with_projects")
    op.drop_constraint("pk_request_ids", "request_ids", type_="primary")
    op.execute(
        "DELETE FROM request_ids a USING request_ids b WHERE a.method = b.method "
        "AND a.request_id = b.request_id AND a.principal > b.principal"
    )
    op.create_primary_key("pk_request_ids", "request_ids", ["method", "request_id"])
    op.drop_column("request_ids", "principal")
    op.drop_index(op.f("ix_operations_project_id"), table_name="operations")
    op.drop_column("operations", "project")
    op.drop_table("iam_policies")
