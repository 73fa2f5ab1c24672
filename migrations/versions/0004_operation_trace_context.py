"""Operations carry the trace context of the request that started them.

`operations.trace_context` holds the W3C traceparent of the RPC that created the operation
(null when tracing is off, and for operations created before this revision); the reconcile
passes working towards the operation continue that trace (docs/observability.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("operations", sa.Column("trace_context", sa.String(length=256), nullable=True))


def downgrade() -> None:
    op.drop_column("operations", "trace_context")
