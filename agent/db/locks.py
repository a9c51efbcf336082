"""Names of database-wide locks: PostgreSQL advisory lock keys, and the SQLite file a lock file sits next to."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.engine import Engine


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for `name` (the same in every process)."""
    return int.from_bytes(hashlib.sha256(f"membot:{name}".encode()).digest()[:8], "big", signed=True)


def sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite engine; None for an in-memory database (or another backend)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()
