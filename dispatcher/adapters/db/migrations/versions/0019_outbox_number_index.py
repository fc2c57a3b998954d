"""outbox: the index on a number also holds the channel and the status

Whether a number has a message in flight on a channel (``status = 'sending'``) is
asked for each pending row a round looks at. With the number alone indexed, that
walked every row ever queued to the number: 30,000 SMS to one hotline made each look
a walk of 30,000. Now it is one seek.

Revision ID: 0019_outbox_number_index
Revises: 0018_fleet
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0019_outbox_number_index"
down_revision = "0018_fleet"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_sms_outbox_number_channel_status", "sms_outbox", ["to_number", "channel", "status"]
    )
    op.drop_index("ix_sms_outbox_to_number", table_name="sms_outbox")


def downgrade() -> None:
    op.create_index("ix_sms_outbox_to_number", "sms_outbox", ["to_number"])
    op.drop_index("ix_sms_outbox_number_channel_status", table_name="sms_outbox")
