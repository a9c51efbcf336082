"""What every bot process shares about platform events: which were already handled (a retry, or one message
that arrives as two events, is handled once by whichever process gets it first), and which threads the bot is
in. Rows expire: platforms retry within minutes, and a forgotten thread is looked up again."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Table, delete, select
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from agent.db.models import utcnow
from agent.db.upsert import insert_ignore, upsert


class SeenEvent(SQLModel, table=True):
    """One handled platform event, by a key its platform keeps on retries: "slack:event:Ev1"."""

    __tablename__ = "seen_event"
    key: str = Field(primary_key=True, max_length=400)
    seen_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False,
                                                                       index=True))


class ThreadMember(SQLModel, table=True):
    """Whether the bot takes part in a thread ("slack:T1:C1:1700000000.000100"), so follow-ups need no mention."""

    __tablename__ = "thread_member"
    key: str = Field(primary_key=True, max_length=400)
    joined: bool = False
    checked_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True),
                                                                          nullable=False, index=True))


_EVENTS: Table = SeenEvent.__table__  # type: ignore[attr-defined]
_THREADS: Table = ThreadMember.__table__  # type: ignore[attr-defined]


class Ledger:
    def __init__(self, engine: Engine, keep_events: timedelta = timedelta(days=1),
                 keep_threads: timedelta = timedelta(days=30), sweep_every: float = 600.0) -> None:
        self.engine = engine
        self.keep_events = keep_events
        self.keep_threads = keep_threads
        self.sweep_every = sweep_every
        self._next_sweep = 0.0
        self._sweep_lock = threading.Lock()

    def first(self, key: str) -> bool:
        """Record event `key`; True for the first delivery of it, in any process."""
        self._maybe_sweep()
        with self.engine.begin() as conn:
            return insert_ignore(conn, _EVENTS, {"key": key[:400], "seen_at": utcnow()})

    def seen(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(_EVENTS.c.key).where(_EVENTS.c.key == key[:400])).first() is not None

    def joined(self, thread: str) -> None:
        """The bot posted in `thread`."""
        self._set_thread(thread, True)

    def in_thread(self, thread: str) -> bool | None:
        """Whether the bot is in `thread`, or None when no process knows yet."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_THREADS.c.joined).where(_THREADS.c.key == thread[:400])).first()
        return None if row is None else bool(row[0])

    def checked(self, thread: str, found: bool) -> None:
        """What the platform said about `thread`; a False never overwrites a True another process wrote."""
        if found:
            self._set_thread(thread, True)
            return
        with self.engine.begin() as conn:
            insert_ignore(conn, _THREADS, {"key": thread[:400], "joined": False, "checked_at": utcnow()})

    def _set_thread(self, thread: str, joined: bool) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            upsert(conn, _THREADS, {"key": thread[:400], "joined": joined, "checked_at": now}, ["key"],
                   {"joined": joined, "checked_at": now})

    def sweep(self, now: datetime | None = None) -> None:
        """Forget events and threads older than they need to be kept."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            conn.execute(delete(_EVENTS).where(_EVENTS.c.seen_at < now - self.keep_events))
            conn.execute(delete(_THREADS).where(_THREADS.c.checked_at < now - self.keep_threads))

    def _maybe_sweep(self) -> None:
        with self._sweep_lock:
            if time.monotonic() < self._next_sweep:
                return
            self._next_sweep = time.monotonic() + self.sweep_every
        self.sweep()
