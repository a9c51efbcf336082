"""Who sees a source: its audience ("workspace" or "channel"), the place it was uploaded in, and its uploader.
Sources from before are workspace sources, as they were.

Revision ID: 0006
Revises: 0005
Created: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source") as batch:
        batch.add_column(sa.Column("audience", sa.String(20), nullable=False, server_default="workspace"))
        batch.add_column(sa.Column("origin_channel", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("uploader", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("source") as batch:
        batch.drop_column("uploader")
        batch.drop_column("origin_channel")
        batch.drop_column("audience")
