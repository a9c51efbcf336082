"""The schema's version: Alembic migrations, run under one lock per database so that any number of processes
can start at once, on an empty database, on one from before migrations, or on one a version behind.

PostgreSQL: a session advisory lock, freed by the server if the process dies. SQLite: an OS file lock next to
the database file, freed by the OS. An in-memory SQLite database has one process by definition.

Every start opens the database, and nearly always it is already at the newest version: that is checked with one
SELECT of the version table against the revisions on disk (`at_newest`), without importing Alembic, which would
cost a CLI command a few tenths of a second. Anything else (no version table, an older version, revisions the
quick scan cannot read) takes Alembic's path under the lock.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from agent.db.locks import lock_key, sqlite_file

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r'^revision = "(\w+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision = (?:None|"(\w+)")$', re.MULTILINE)
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
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(config()).get_heads()
    if len(heads) != 1:  # two branches added a migration on the same parent: one must be rebased
        raise RuntimeError(f"the migrations have {len(heads)} heads ({', '.join(heads)}); "
                           "set one's down_revision to the other")
    return heads[0]


@lru_cache(maxsize=1)
def newest_on_disk() -> str | None:
    """The newest revision, read from the migration files' `revision = "..."` and `down_revision = ...` lines
    without Alembic; None when that is not certain (a file in another shape, a merge, two heads)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(source), _DOWN_REVISION.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        parents.update(d for d in down if d)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_newest(engine: Engine) -> bool:
    """Whether the database's version table names the newest revision on disk: one SELECT, no lock, no Alembic.
    A database at the newest version is never changed by anyone, so no lock is needed to read that it is."""
    newest = newest_on_disk()
    if newest is None:
        return False
    with engine.connect() as conn:
        try:
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError:  # no version table (a new or legacy database): Alembic's path, under the lock
            return False
    return found == [newest]


def state(conn: Connection) -> SchemaState:
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(conn).get_current_revision()
    legacy = current is None and any(inspect(conn).has_table(t) for t in LEGACY_MARKERS)
    return SchemaState(current, head(), legacy)


def upgrade(engine: Engine) -> SchemaState:
    """Bring the database to the newest version under the schema lock; returns the state found before."""
    if at_newest(engine):
        newest = str(newest_on_disk())
        return SchemaState(newest, newest, legacy=False)
    from alembic import command

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
