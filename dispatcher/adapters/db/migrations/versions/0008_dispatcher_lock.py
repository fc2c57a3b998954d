"""dispatcher lock and handled webhooks: one dispatcher per database, no replayed reply acts twice

Revision ID: 0008_dispatcher_lock
Revises: 0003_delivery
Create Date: 2026-12-02

``dispatcher_lock`` holds the running dispatcher's lease
(dispatcher.services.instance_lock); ``handled_webhooks`` the Twilio webhooks already
acted on, by sid, with the answer given (dispatcher.services.phone_desk).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_dispatcher_lock"
down_revision = "0007_fit_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatcher_lock",
        sa.Column("name", sa.String(length=32), primary_key=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "handled_webhooks",
        sa.Column("sid", sa.String(length=64), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("handled_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("handled_webhooks")
    op.drop_table("dispatcher_lock")
