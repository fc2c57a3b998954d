"""escalation clock: a press brings each step forward once; outbox rows say their timer

``calls.brought_forward_step`` remembers which step a repeated press already brought
forward; ``sms_outbox.timer`` says which of a call's step numberings (its escalation,
its acknowledgement timeout) a row's ``step`` counts, so that nobody is queued twice
for one step.

Revision ID: 0009_escalation_clock
Revises: 0003_delivery
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_escalation_clock"
down_revision = "0008_dispatcher_lock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("brought_forward_step", sa.Integer(), nullable=True))
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timer", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.drop_column("timer")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("brought_forward_step")
