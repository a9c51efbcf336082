"""The durable inbox of questions, leased to the process answering them (agent/inbox.py).

Revision ID: 0007
Revises: 0006
Created: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_at = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "turn_inbox", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(400), nullable=False), sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False), sa.Column("platform", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False), sa.Column("text", sa.Text),
        sa.Column("speaker_id", sa.String(200), nullable=False), sa.Column("speaker_name", sa.String(200),
                                                                           nullable=False),
        sa.Column("thread", sa.String(200), nullable=False), sa.Column("reply_channel", sa.String(200),
                                                                       nullable=False),
        sa.Column("reply_thread", sa.String(200), nullable=False), sa.Column("reply_user", sa.String(200),
                                                                             nullable=False),
        sa.Column("ordered", sa.Boolean, nullable=False), sa.Column("confirmed", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False), sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("lease_until", _at, nullable=False), sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", _at, nullable=False), sa.Column("finished_at", _at, nullable=True),
        sa.UniqueConstraint("key", name="uq_turn_inbox_key"))
    op.create_index("ix_turn_inbox_agent", "turn_inbox", ["scope", "agent", "status"])
    op.create_index("ix_turn_inbox_status", "turn_inbox", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_table("turn_inbox")
