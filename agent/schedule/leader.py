"""Leadership: exactly one process runs a platform's schedules, and another takes over when it stops.

PostgreSQL: a session advisory lock held on a dedicated connection; the server frees it when the process or the
connection dies. SQLite: an OS file lock next to the database file; the OS frees it when the process exits.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)


class Lock(Protocol):
    def acquire(self) -> bool:
        """Try once, without waiting; True when this process holds the lock (also when it already did)."""

    def alive(self) -> bool:
        """Whether the lock is still held (a dropped database connection loses it)."""

    def release(self) -> None:
        ...


def leader_lock(engine: Engine, name: str) -> Lock:
    """The lock for leadership `name` on this database."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, name)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLock(Path(f"{Path(database).expanduser()}.{name}.lock"))
    return ProcessLock(f"{engine.url}:{name}")  # one process can reach this database: exclusive within it


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"membot:{name}".encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.key = _key(name)
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            return self.alive()
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception:
            log.warning("cannot reach the database for the scheduler lock", exc_info=True)
            return False
        try:
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        except Exception:
            log.warning("pg_try_advisory_lock failed", exc_info=True)
            held = False
        if held:
            self._conn = conn
        else:
            conn.close()
        return held

    def alive(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("lost the scheduler lock's connection", exc_info=True)
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:
            log.debug("unlock failed; closing the connection frees the lock", exc_info=True)
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # close the server session itself, so no lock can outlive it in the pool
                conn.close()
            except Exception:
                log.debug("closing the lock connection failed", exc_info=True)


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()}:{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def alive(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _unlock(fd)
            os.close(fd)


if sys.platform == "win32":  # pragma: no cover - no Windows in CI
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        # flock locks belong to the open file, so two schedulers in one process exclude each other too
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class ProcessLock:
    _held: set[str] = set()
    _guard = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name
        self._mine = False

    def acquire(self) -> bool:
        with self._guard:
            if not self._mine and self.name not in self._held:
                self._held.add(self.name)
                self._mine = True
            return self._mine

    def alive(self) -> bool:
        return self._mine

    def release(self) -> None:
        with self._guard:
            if self._mine:
                self._held.discard(self.name)
                self._mine = False
