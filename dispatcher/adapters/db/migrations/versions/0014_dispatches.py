"""dispatches: responders sent to a call, with their expected arrival

Revision ID: 0014_dispatches
Revises: 0012_accounts
Create Date: 2026-12-04

``dispatches`` holds each responder sent to a call (dispatcher.core.dispatches);
``overdue_due_at`` is polled by the escalator's cycle, so a restart loses none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_dispatches"
down_revision = "0012_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(length=32), sa.ForeignKey("calls.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("responder_kind", sa.String(length=16), nullable=False),
        sa.Column("responder_ref", sa.String(length=100), nullable=False),
        sa.Column("responder_name", sa.String(length=100), nullable=False),
        sa.Column("responder_phone", sa.String(length=32), nullable=True),
        sa.Column("dispatched_by", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(), nullable=False),
        sa.Column("expected_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("overdue_due_at", sa.DateTime(), nullable=True),
        sa.Column("overdue_at", sa.DateTime(), nullable=True),
        sa.Column("arrived_at", sa.DateTime(), nullable=True),
        sa.Column("arrived_by", sa.String(length=100), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("ended_by", sa.String(length=100), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.UniqueConstraint("call_id", "number", name="uq_dispatches_call_id_number"),
    )
    op.create_index("ix_dispatches_overdue_due_at", "dispatches", ["overdue_due_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dispatches_overdue_due_at", table_name="dispatches")
    op.drop_table("dispatches")
