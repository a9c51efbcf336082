"""Alembic's entry point. It runs only on a connection handed over by `agent.db.schema` (which holds the schema
lock), never on a URL of its own."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from agent.db.schema_compare import include_object
from agent.tables import register_all  # the one upward import (pyproject: ignore_imports): autogenerate

register_all()
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("membot's migrations run through `membot db upgrade`, not the alembic command")

# render_as_batch: SQLite alters a table by copying it, and Alembic's batch mode does that for us.
context.configure(connection=connection, target_metadata=SQLModel.metadata, include_object=include_object,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
