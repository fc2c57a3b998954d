"""watchdog: the shift supervisor paged for a call nobody has taken

Revision ID: 0017_watchdog
Revises: 0016_registry
Create Date: 2026-12-04

``calls.watchdog_at`` is when the next page is due (polled, indexed), ``watchdog_pages``
how many were sent and ``watchdog_paged_at`` when the first was
(dispatcher.core.watchdog). Calls stored before have no watchdog in their policy: they
are never paged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_watchdog"
down_revision = "0016_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("watchdog_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("watchdog_pages", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("watchdog_paged_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_calls_watchdog_at", ["watchdog_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_watchdog_at")
        batch_op.drop_column("watchdog_paged_at")
        batch_op.drop_column("watchdog_pages")
        batch_op.drop_column("watchdog_at")
