"""fit columns: what is kept of a rejected message (its length and digest)

A rejected payload is stored capped at its first 4 KiB; these say how long the
whole was and what it was, so that a flood of huge payloads is still visible.

Revision ID: 0007_fit_columns
Revises: 0003_delivery
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_fit_columns"
down_revision = "0003_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rejected_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_length", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("raw_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rejected_messages", schema=None) as batch_op:
        batch_op.drop_column("raw_sha256")
        batch_op.drop_column("raw_length")
