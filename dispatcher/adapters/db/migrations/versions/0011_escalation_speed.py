"""escalation speed: a phone's smallest free reply number without reading them all

``reply_code_free`` holds each phone's retired numbers below its highest active one;
``reply_codes`` gets an index on (phone, active, number) for the highest active
number (replacing the one on (phone, active)) and one on (call_id, phone, active) for
the number a phone already has for a call (replacing the one on call_id). The free
numbers of the codes already given are filled in here.

Revision ID: 0011_escalation_speed
Revises: 0009_escalation_clock
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_escalation_speed"
down_revision = "0010_outbox_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    free = op.create_table(
        "reply_code_free",
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("phone", "number", name=op.f("pk_reply_code_free")),
    )
    with op.batch_alter_table("reply_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_reply_codes_phone_active")
        batch_op.drop_index("ix_reply_codes_call_id")
        batch_op.create_index(
            "ix_reply_codes_call_id_phone_active", ["call_id", "phone", "active"], unique=False
        )
        batch_op.create_index(
            "ix_reply_codes_phone_active_number", ["phone", "active", "number"], unique=False
        )
    codes = sa.table(
        "reply_codes",
        sa.column("phone", sa.String),
        sa.column("number", sa.Integer),
        sa.column("active", sa.Boolean),
    )
    held: dict[str, set[int]] = {}
    for phone, number in op.get_bind().execute(
        sa.select(codes.c.phone, codes.c.number).where(codes.c.active)
    ):
        held.setdefault(str(phone), set()).add(int(number))
    rows = [
        {"phone": phone, "number": n}
        for phone, numbers in held.items()
        for n in range(1, max(numbers))
        if n not in numbers
    ]
    if rows:
        op.bulk_insert(free, rows)


def downgrade() -> None:
    with op.batch_alter_table("reply_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_reply_codes_phone_active_number")
        batch_op.drop_index("ix_reply_codes_call_id_phone_active")
        batch_op.create_index("ix_reply_codes_call_id", ["call_id"], unique=False)
        batch_op.create_index("ix_reply_codes_phone_active", ["phone", "active"], unique=False)
    op.drop_table("reply_code_free")
