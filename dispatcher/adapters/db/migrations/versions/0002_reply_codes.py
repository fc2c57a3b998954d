"""reply codes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reply_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_reply_codes_call_id_calls")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_codes")),
    )
    with op.batch_alter_table("reply_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reply_codes_call_id"), ["call_id"], unique=False)
        batch_op.create_index("ix_reply_codes_phone_active", ["phone", "active"], unique=False)


def downgrade() -> None:
    op.drop_table("reply_codes")
