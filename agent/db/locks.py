"""Database-wide locks: PostgreSQL advisory lock keys, the SQLite file a lock file sits next to, and the queue
of this process's SQLite writers."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from weakref import WeakKeyDictionary

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


_gates: WeakKeyDictionary[Engine, threading.RLock] = WeakKeyDictionary()
_gates_lock = threading.Lock()


@contextmanager
def sqlite_writer(engine: Engine) -> Iterator[None]:
    """Around a short write transaction: on SQLite, this process's writers queue on a lock, so that the next one
    starts the moment the last one commits. Left to SQLite, writers that find the file locked poll it with
    sleeps that grow to 100 ms: 50 turns landing at once spent a third of a second each waiting for a lock
    that was free most of the time. Re-entrant (a writer calling a writer on its own thread); other processes
    still meet SQLite's own lock and busy timeout. On PostgreSQL it does nothing."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _gates_lock:
        gate = _gates.setdefault(engine, threading.RLock())
    with gate:
        yield
