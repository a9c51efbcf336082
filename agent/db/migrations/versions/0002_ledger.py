"""Handled platform events and the threads the bot is in, shared by every process (agent/ledger.py).

Revision ID: 0002
Revises: 0001
Created: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("seen_event", sa.Column("key", sa.String(400), primary_key=True),
                    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ix_seen_event_seen_at", "seen_event", ["seen_at"])
    op.create_table("thread_member", sa.Column("key", sa.String(400), primary_key=True),
                    sa.Column("joined", sa.Boolean, nullable=False),
                    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ix_thread_member_checked_at", "thread_member", ["checked_at"])


def downgrade() -> None:
    op.drop_table("thread_member")
    op.drop_table("seen_event")
