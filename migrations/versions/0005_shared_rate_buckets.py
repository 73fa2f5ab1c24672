"""AWS rate-limit buckets shared by every replica, one row per (account, Region, family).

Several worker processes calling AWS for one account must draw from one bucket, as AWS counts
them; each call reserves a token with one upsert (storage/buckets.py). The rows are a cache of
timing state: dropping the table loses nothing but a few seconds of pacing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "aws_rate_buckets",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=100), nullable=False),
        sa.Column("capacity", sa.Float(), nullable=False),
        sa.Column("refill", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("stamp", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "region", "family", name=op.f("pk_aws_rate_buckets")),
    )


def downgrade() -> None:
    op.drop_table("aws_rate_buckets")
