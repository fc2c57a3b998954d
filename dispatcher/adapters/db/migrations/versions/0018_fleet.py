"""fleet: a device's power, its last end-to-end test and its test mode

``device_links.power_lost_at``: since when the base unit has reported ``power_lost``
without a ``power_restored`` (a grouped power cut counts the devices still without
power from it). ``last_test_at``: the last proven end-to-end test (a ``test`` event, or
a press while in test mode). ``test_mode_until``: an installer's test mode, in force
until then.

Revision ID: 0018_fleet
Revises: 0017_watchdog
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_fleet"
down_revision = "0017_watchdog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("power_lost_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_test_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("test_mode_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device_links", schema=None) as batch_op:
        batch_op.drop_column("test_mode_until")
        batch_op.drop_column("last_test_at")
        batch_op.drop_column("power_lost_at")
