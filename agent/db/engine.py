"""Opening the SQL database: SQLite by default, PostgreSQL for more than one process."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlmodel import SQLModel, create_engine

from agent.db import models  # noqa: F401  (registers the tables)
from agent.db.models import SOURCE_NAME_INDEX
from agent.errors import ConfigError, StoreUnavailable
from agent.redact import scrub
from agent.schedule import model as schedule_model  # noqa: F401  (registers the schedule tables)

log = logging.getLogger(__name__)


def open_engine(url: str) -> Engine:
    """Create the engine and the tables. Raises StoreUnavailable with the URL (no password) on failure."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"MEMBOT_DATABASE_URL is not a database URL: {exc}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(parsed, pool_pre_ping=True)
    try:
        SQLModel.metadata.create_all(engine)
        add_missing_columns(engine)
        add_missing_indexes(engine)
    except OperationalError as exc:
        shown = parsed.render_as_string(hide_password=True)
        why = scrub(str(exc.orig), [str(parsed.password or "")])  # a driver may quote the DSN back
        raise StoreUnavailable(f"Cannot open the database {shown}: {why}") from exc
    return engine


def add_missing_columns(engine: Engine) -> None:
    """Additive migrations: a column a newer membot added to a table is added to an older database."""
    existing = inspect(engine)
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            have = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                scalar = column.default is not None and column.default.is_scalar
                default = getattr(column.default, "arg", None) if scalar else None
                clause = f" DEFAULT {_literal(default)}" if default is not None else ""
                not_null = " NOT NULL" if default is not None and not column.nullable else ""
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{clause}{not_null}'))


def add_missing_indexes(engine: Engine) -> None:
    """Indexes a newer membot added to an existing table (create_all adds only whole tables). One that the
    data contradicts (two sources an older membot let differ only by case) is skipped with a warning."""
    try:  # IF NOT EXISTS, which SQLite and PostgreSQL both know: reflection skips expression indexes
        with engine.begin() as conn:
            conn.execute(text(f"CREATE UNIQUE INDEX IF NOT EXISTS {SOURCE_NAME_INDEX.name} ON source "
                              "(scope, lower(name))"))
    except IntegrityError:
        log.warning("index %s was not created: rows violate it (sources whose names differ only by case); "
                    "rename or delete one of each pair", SOURCE_NAME_INDEX.name)


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
