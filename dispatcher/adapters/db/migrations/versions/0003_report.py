"""service levels: who answered each call, when, by which channel, at which level

Revision ID: 0003_report
Revises: 0002
Create Date: 2026-11-28

Calls answered before this migration get their answer time and answerer from
``acknowledged_at``/``acknowledged_by`` (the first acknowledgement, or the resolve
that answered) and their channel from the timeline entry of that answer. Their
level stays NULL: the reports derive it from the directory when they read it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_report"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answered_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("answered_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("answered_channel", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("answered_level", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_calls_opened_at", ["opened_at"], unique=False)
    op.execute(
        "UPDATE calls SET answered_at = acknowledged_at, answered_by = acknowledged_by, "
        "answered_channel = ("
        " SELECT t.channel FROM timeline t WHERE t.call_id = calls.id"
        " AND t.action IN ('acknowledged', 'resolved') AND t.actor = calls.acknowledged_by"
        " ORDER BY t.at, t.id LIMIT 1"
        ") WHERE acknowledged_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_opened_at")
        batch_op.drop_column("answered_level")
        batch_op.drop_column("answered_channel")
        batch_op.drop_column("answered_by")
        batch_op.drop_column("answered_at")
