"""registry: areas, staff, residents and contacts, devices and their history,
service providers, and the audit of every change

Revision ID: 0016_registry
Revises: 0014_dispatches
Create Date: 2026-12-04

The data folder's CSV files seed these tables on the first start with an empty
registry (dispatcher.services.registry); from then on the database holds the records.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_registry"
down_revision = "0014_dispatches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "areas",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("area_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("api_token", sa.String(length=128), nullable=True),
        sa.Column("contact_methods", sa.Text(), nullable=False),
        sa.UniqueConstraint("api_token", name="uq_staff_api_token"),
    )
    op.create_index("ix_staff_area_id", "staff", ["area_id"])
    op.create_table(
        "residents",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("mobile", sa.String(length=32), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("id_card", sa.String(length=18), nullable=False),
        sa.Column("building", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("room", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("medication", sa.Text(), nullable=False),
        sa.Column("mobility", sa.Text(), nullable=False),
        sa.Column("key_safe", sa.Text(), nullable=False),
        sa.Column("access_notes", sa.Text(), nullable=False),
        sa.Column("key_resident", sa.String(length=32), nullable=False),
    )
    op.create_index("ix_residents_community_id", "residents", ["community_id"])
    op.create_table(
        "resident_contacts",
        sa.Column("resident_id", sa.String(length=64), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("relation", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("key_holder", sa.Boolean(), nullable=False),
        sa.Column("contact_methods", sa.Text(), nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("firmware", sa.Text(), nullable=False),
        sa.Column("installed_on", sa.Date(), nullable=True),
        sa.Column("installed_by", sa.Text(), nullable=False),
        sa.Column("resident_id", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("retired_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_devices_resident_id", "devices", ["resident_id"])
    op.create_table(
        "device_assignments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("resident_id", sa.String(length=64), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=True),
        sa.Column("by", sa.String(length=64), nullable=False),
    )
    op.create_index("ix_device_assignments_device_id", "device_assignments", ["device_id"])
    op.create_table(
        "providers",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("area_id", sa.String(length=64), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
    )
    op.create_index("ix_providers_area_id", "providers", ["area_id"])
    op.create_table(
        "registry_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("area_id", sa.String(length=64), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
    )
    op.create_index("ix_registry_audit_at", "registry_audit", ["at"])
    op.create_index("ix_registry_audit_kind_record", "registry_audit", ["kind", "record_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_registry_audit_kind_record", "registry_audit"),
        ("ix_registry_audit_at", "registry_audit"),
        ("ix_providers_area_id", "providers"),
        ("ix_device_assignments_device_id", "device_assignments"),
        ("ix_devices_resident_id", "devices"),
        ("ix_residents_community_id", "residents"),
        ("ix_staff_area_id", "staff"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "registry_audit",
        "providers",
        "device_assignments",
        "devices",
        "resident_contacts",
        "residents",
        "staff",
        "areas",
    ):
        op.drop_table(table)
