"""Baseline: the tables membot created with create_all before it had migrations.

Revision ID: 0001
Revises:
Created: 2026-12-02

A database from before migrations holds some or all of these tables (older ones lack a few columns). This
revision creates what is missing and adds missing columns, so such a database is adopted in place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_at = sa.DateTime(timezone=True)


def _tables(meta: sa.MetaData) -> None:
    def text(name: str, length: int, default: str = "") -> sa.Column:  # type: ignore[type-arg]
        return sa.Column(name, sa.String(length), nullable=False, server_default=default or None)

    def number(name: str) -> sa.Column:  # type: ignore[type-arg]
        return sa.Column(name, sa.Integer, nullable=False)

    sa.Table("source", meta, sa.Column("id", sa.Integer, primary_key=True),
             text("scope", 200), text("name", 200), text("embedding_model", 200), number("embedding_dim"),
             number("chunk_tokens"), number("revision"), sa.Column("ready", sa.Boolean, nullable=False),
             sa.Column("created_at", _at, nullable=False), sa.Column("updated_at", _at, nullable=False),
             sa.UniqueConstraint("scope", "name"), sa.Index("ix_source_scope", "scope"))
    sa.Table("agent", meta, sa.Column("id", sa.Integer, primary_key=True),
             text("scope", 200), text("name", 200), text("persona_preset", 200), text("human_preset", 200),
             text("embedding_model", 200), number("embedding_dim"), sa.Column("summary", sa.Text),
             number("context_from"), sa.Column("pressure_alerted", sa.Boolean, nullable=False),
             number("archival_revision"), sa.Column("created_at", _at, nullable=False),
             sa.Column("updated_at", _at, nullable=False),
             sa.UniqueConstraint("scope", "name"), sa.Index("ix_agent_scope", "scope"))
    sa.Table("document", meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("source_id", sa.Integer, sa.ForeignKey("source.id"), nullable=False),
             text("file_name", 1000), text("content_hash", 64), number("size_bytes"), number("page_count"),
             number("passage_count"), text("status", 20), text("owner", 200),
             sa.Column("created_at", _at, nullable=False),
             sa.Index("ix_document_source_id", "source_id"), sa.Index("ix_document_content_hash", "content_hash"))
    sa.Table("block", meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("agent_id", sa.Integer, sa.ForeignKey("agent.id"), nullable=False),
             text("label", 200), text("title", 200), sa.Column("value", sa.Text), number("limit"),
             sa.UniqueConstraint("agent_id", "label"), sa.Index("ix_block_agent_id", "agent_id"))
    sa.Table("message", meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("agent_id", sa.Integer, sa.ForeignKey("agent.id"), nullable=False),
             text("role", 20), text("kind", 20), text("author", 200), text("author_id", 200), text("thread", 200),
             sa.Column("content", sa.Text), sa.Column("tool_calls", sa.Text), text("tool_call_id", 200),
             text("name", 200), sa.Column("created_at", _at, nullable=False),
             sa.Index("ix_message_agent_id", "agent_id"), sa.Index("ix_message_created_at", "created_at"))
    sa.Table("sourcebinding", meta,
             sa.Column("agent_id", sa.Integer, sa.ForeignKey("agent.id"), primary_key=True),
             sa.Column("source_id", sa.Integer, sa.ForeignKey("source.id"), primary_key=True),
             sa.Column("created_at", _at, nullable=False))
    sa.Table("schedule", meta, sa.Column("id", sa.Integer, primary_key=True), number("agent_id"),
             text("platform", 50), text("scope", 200), text("channel", 200), text("user", 200),
             text("thread", 200), sa.Column("text", sa.Text), text("spec", 300), text("trigger", 200),
             text("timezone", 100), text("status", 20), text("created_by", 200),
             sa.Column("created_at", _at, nullable=False), sa.Column("next_fire_at", _at),
             sa.Column("last_fired_at", _at), sa.Column("ended_at", _at), number("fire_count"),
             number("missed_count"), number("revision"),
             sa.Index("ix_schedule_agent_id", "agent_id"), sa.Index("ix_schedule_platform", "platform"),
             sa.Index("ix_schedule_status", "status"))
    sa.Table("channelzone", meta, sa.Column("agent_id", sa.Integer, primary_key=True),
             text("timezone", 100))


# Columns added after their table first shipped, with the value older rows get.
_LATE_COLUMNS = {("document", "owner"): "''", ("agent", "archival_revision"): "0",
                 ("agent", "pressure_alerted"): "FALSE", ("source", "revision"): "0"}


def upgrade() -> None:
    meta = sa.MetaData()
    _tables(meta)
    bind = op.get_bind()
    for table in meta.sorted_tables:
        have = sa.inspect(bind)
        if not have.has_table(table.name):
            table.create(bind)
            continue
        present = {c["name"] for c in have.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                _add_late(table.name, column)


def _add_late(table: str, column: sa.Column) -> None:  # type: ignore[type-arg]
    """A column an older membot did not have (its old add-on-start migration would have added it)."""
    default = _LATE_COLUMNS.get((table, column.name))
    if default is None:
        default = "''" if isinstance(column.type, sa.String) else None
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column(column.name, column.type, nullable=default is None,
                                   server_default=sa.text(default) if default else None))


def downgrade() -> None:
    for name in ("channelzone", "schedule", "sourcebinding", "message", "block", "document", "agent", "source"):
        op.drop_table(name)
