"""Firings in flight with a lease, so a claimed firing survives its process (agent/schedule/firings.py).

Revision ID: 0003
Revises: 0002
Created: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_at = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedule_firing", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("schedule_id", sa.Integer, nullable=False), sa.Column("platform", sa.String(50), nullable=False),
        sa.Column("due_at", _at, nullable=False), sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("event_text", sa.Text), sa.Column("status", sa.String(20), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False), sa.Column("lease_until", _at, nullable=False),
        sa.Column("texts", sa.Text), sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False), sa.Column("created_at", _at, nullable=False),
        sa.UniqueConstraint("schedule_id", "due_at"))
    op.create_index("ix_schedule_firing_schedule_id", "schedule_firing", ["schedule_id"])
    op.create_index("ix_schedule_firing_platform", "schedule_firing", ["platform"])
    op.create_index("ix_schedule_firing_status", "schedule_firing", ["status"])


def downgrade() -> None:
    op.drop_table("schedule_firing")
