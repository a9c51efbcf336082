"""A document remembers the platform's id of the uploaded file (a Slack file id), so deleting the file in Slack
removes its document.

Revision ID: 0008
Revises: 0007
Created: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.add_column(sa.Column("file_ref", sa.String(200), nullable=False, server_default=""))
    op.create_index("ix_document_file_ref", "document", ["file_ref"])


def downgrade() -> None:
    op.drop_index("ix_document_file_ref", "document")
    with op.batch_alter_table("document") as batch:
        batch.drop_column("file_ref")
