"""outbox claims: which dispatcher instance holds an entry, and whether its request left

Revision ID: 0010_outbox_claims
Revises: 0003_delivery
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_outbox_claims"
down_revision = "0009_escalation_clock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("requested_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.drop_column("requested_at")
        batch_op.drop_column("claimed_by")
