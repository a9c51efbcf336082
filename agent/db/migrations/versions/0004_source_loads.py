"""Safe loads and deletes from several processes: source.deleting, loads in progress, one ready version per file.

Revision ID: 0004
Revises: 0003
Created: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_READY = sa.text("status = 'ready'")


def upgrade() -> None:
    with op.batch_alter_table("source") as batch:
        batch.add_column(sa.Column("deleting", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table("source_load", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("source_id", sa.Integer, nullable=False),
                    sa.Column("owner", sa.String(200), nullable=False),
                    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ix_source_load_source_id", "source_load", ["source_id"])
    # Two racing loads of one file could leave it ready twice: keep the newest, retire the others.
    op.execute("UPDATE document SET status = 'replaced' WHERE status = 'ready' AND EXISTS (SELECT 1 FROM document "
               "AS newer WHERE newer.source_id = document.source_id AND newer.file_name = document.file_name "
               "AND newer.status = 'ready' AND newer.id > document.id)")
    op.create_index("uq_document_ready_file", "document", ["source_id", "file_name"], unique=True,
                    sqlite_where=_READY, postgresql_where=_READY)


def downgrade() -> None:
    op.drop_index("uq_document_ready_file", "document")
    op.drop_table("source_load")
    with op.batch_alter_table("source") as batch:
        batch.drop_column("deleting")
