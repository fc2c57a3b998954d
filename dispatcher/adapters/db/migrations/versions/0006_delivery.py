"""delivery: channels, contact methods, bundling and provider outcomes on the outbox

Revision ID: 0003_delivery
Revises: 0003_policy
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_delivery"
down_revision = "0003_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=8), nullable=False, server_default="sms")
        )
        batch_op.add_column(
            sa.Column("method_order", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column("language", sa.String(length=8), nullable=False, server_default="zh")
        )
        batch_op.add_column(sa.Column("reply_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("bundle_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("error_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("answered_by", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_sms_outbox_to_number", ["to_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_outbox_to_number")
        for column in (
            "answered_by",
            "error_code",
            "bundle_id",
            "summary",
            "reply_code",
            "language",
            "method_order",
            "channel",
        ):
            batch_op.drop_column(column)
