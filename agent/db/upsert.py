"""Insert-or-ignore and upsert in one statement, on PostgreSQL and SQLite: the row decides who was first,
never a read before the write (two processes would both read "absent")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError


def _insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    return None


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert the row unless its key exists; True when this call inserted it."""
    stmt = _insert(conn, table)
    if stmt is None:  # another database: the unique key still decides, through the error
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**values))
            return True
        except IntegrityError:
            return False
    # RETURNING, not rowcount: psycopg reports no row count for an INSERT that SQLAlchemy gave RETURNING to.
    key = list(table.primary_key.columns)[0]
    return conn.execute(stmt.values(**values).on_conflict_do_nothing().returning(key)).first() is not None


def upsert(conn: Connection, table: Table, values: dict[str, Any], keys: list[str], update: dict[str, Any]) -> None:
    """Insert the row, or set `update` on the row with the same `keys`."""
    stmt = _insert(conn, table)
    if stmt is None:
        raise NotImplementedError(f"upsert on {conn.dialect.name}")
    conn.execute(stmt.values(**values).on_conflict_do_update(index_elements=keys, set_=update))
