"""The schema's version: Alembic migrations, run under one lock per database so that any number of processes
can start at once, on an empty database, on one from before migrations, or on one a version behind.

PostgreSQL: a session advisory lock, freed by the server if the process dies. SQLite: an OS file lock next to
the database file, freed by the OS. An in-memory SQLite database has one process by definition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from agent.db.locks import lock_key, sqlite_file

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
LEGACY_MARKERS = ("source", "agent", "schedule")  # tables create_all made before there was a version
_memory_lock = threading.Lock()


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: no version table (empty, or from before migrations)
    head: str
    legacy: bool  # tables exist but carry no version

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head() -> str:
    heads = ScriptDirectory.from_config(config()).get_heads()
    if len(heads) != 1:  # two branches added a migration on the same parent: one must be rebased
        raise RuntimeError(f"the migrations have {len(heads)} heads ({', '.join(heads)}); "
                           "set one's down_revision to the other")
    return heads[0]


def state(conn: Connection) -> SchemaState:
    current = MigrationContext.configure(conn).get_current_revision()
    legacy = current is None and any(inspect(conn).has_table(t) for t in LEGACY_MARKERS)
    return SchemaState(current, head(), legacy)


def upgrade(engine: Engine) -> SchemaState:
    """Bring the database to the newest version under the schema lock; returns the state found before."""
    with schema_lock(engine) as conn:
        before = state(conn)
        if before.up_to_date:
            return before
        if before.legacy:
            log.info("adopting a database created before schema versions (creating what is missing)")
        log.info("upgrading the database schema from %s to %s", before.current or "nothing", before.head)
        command.upgrade(config(conn), "head")
        conn.commit()
        return before


def current(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return state(conn)


@contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """Hold the database's schema lock; yields a connection to migrate on (the lock's own, on PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key("schema")})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key("schema")})
                conn.commit()
        return
    path = sqlite_file(engine)
    if path is None:
        with _memory_lock, engine.connect() as conn:
            yield conn
        return
    with _file_lock(Path(f"{path}.schema.lock")), engine.connect() as conn:
        yield conn


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits: another process is migrating, which takes seconds at most
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
