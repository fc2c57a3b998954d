"""acknowledgement timeout state on calls

Revision ID: 0003_policy
Revises: 0003_rota
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_policy"
down_revision = "0003_rota"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ack_timeout_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ack_step", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_ack_escalation_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "ix_calls_next_ack_escalation_at", ["next_ack_escalation_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_next_ack_escalation_at")
        batch_op.drop_column("next_ack_escalation_at")
        batch_op.drop_column("ack_step")
        batch_op.drop_column("ack_timeout_at")
        batch_op.drop_column("held_by")
