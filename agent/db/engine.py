"""Opening the SQL database: SQLite by default, PostgreSQL for more than one process."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import create_engine

from agent.db.schema import upgrade
from agent.errors import ConfigError, StoreUnavailable
from agent.redact import scrub

log = logging.getLogger(__name__)


def open_engine(url: str, migrate: bool = True, connections: int = 5) -> Engine:
    """Create the engine and bring its schema to the newest version (see agent.db.schema). Raises
    StoreUnavailable with the URL (no password) on failure. `connections`: how many may be in use at once (one
    per turn worker plus the adapters' own), so the pool is never the limit on concurrent turns."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"MEMBOT_DATABASE_URL is not a database URL: {exc}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=connections, max_overflow=10)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=connections, max_overflow=10)
    try:
        if migrate:
            upgrade(engine)  # under the schema lock: any number of processes may start at once
        else:
            engine.connect().close()  # fail here, with the message below, when the server is unreachable
    except OperationalError as exc:
        shown = parsed.render_as_string(hide_password=True)
        why = scrub(str(exc.orig), [str(parsed.password or "")])  # a driver may quote the DSN back
        raise StoreUnavailable(f"Cannot open the database {shown}: {why}") from exc
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
