"""The durable inbox: every question is written to SQL when it is accepted, before its turn runs, and is marked
answered in the transaction that lands its turn. Rows are leased to the process that took them; a row whose
lease ran out (its process died, or it was abandoned at shutdown) is answered by another process, or by the
same one after a restart, with a short apology naming the question, exactly once.

The inbox also orders the turns of one agent across processes: a row is claimed (pending -> running) only while
no other row of its agent runs and, for a platform question, no older question of another process still waits.
A claim is one short transaction (a PostgreSQL advisory lock on the agent, SQLite's one writer); nothing is
held while the model thinks.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Exists,
    Index,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from agent.db.locks import lock_key, sqlite_writer
from agent.db.models import utcnow
from agent.db.upsert import insert_ignore
from agent.pool import check_abandoned
from agent.schedule.delivery import DeliveryRegistry, Target, platform_of
from agent.turns import Incoming

log = logging.getLogger(__name__)

PENDING, RUNNING, REPORTING = "pending", "running", "reporting"  # open: leased to a process
DONE, FAILED, SKIPPED, REPORTED = "done", "failed", "skipped", "reported"  # closed
OPEN = (PENDING, RUNNING, REPORTING)
APOLOGY = "Sorry, I was interrupted and did not answer this: {excerpt}. Please ask again."


class InboxRow(SQLModel, table=True):
    __tablename__ = "turn_inbox"
    __table_args__ = (UniqueConstraint("key", name="uq_turn_inbox_key"),
                      Index("ix_turn_inbox_agent", "scope", "agent", "status"),
                      Index("ix_turn_inbox_status", "status", "lease_until"))
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400)  # the platform's event key ("slack:T1:C1:1700000000.000100"); unique
    scope: str = Field(max_length=200)
    agent: str = Field(max_length=200)  # the agent's name in its scope: (scope, agent) is its lane
    platform: str = Field(max_length=50)
    kind: str = Field(default="message", max_length=20)  # message | event | login | edit (a person's pop...)
    text: str = Field(default="", sa_column=Column(Text))
    speaker_id: str = Field(default="", max_length=200)
    speaker_name: str = Field(default="", max_length=200)
    thread: str = Field(default="", max_length=200)
    reply_channel: str = Field(default="", max_length=200)  # where to answer: a Target
    reply_thread: str = Field(default="", max_length=200)
    reply_user: str = Field(default="", max_length=200)
    ordered: bool = True  # waits for the older questions of other processes (platform questions do)
    confirmed: bool = True  # known to be for the bot (a thread follow-up is confirmed once checked)
    status: str = Field(default=PENDING, max_length=20)
    owner: str = Field(default="", max_length=200)
    lease_until: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


ROWS: Table = InboxRow.__table__  # type: ignore[attr-defined]
_c = ROWS.c


class LeaseLost(Exception):
    """The question was taken over by another process (this one stopped renewing its lease): the turn must not
    land."""


@dataclass(frozen=True)
class Question:
    """A platform question as accepted: its event key, its agent, what was said, and where to answer."""

    key: str
    scope: str
    agent: str
    incoming: Incoming
    reply_to: Target
    confirmed: bool = True


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def excerpt(text: str, limit: int = 200) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


class Inbox:
    def __init__(self, engine: Engine, deliveries: DeliveryRegistry, lease: float = 60.0, poll: float = 0.05,
                 keep: timedelta = timedelta(days=1)) -> None:
        if lease <= 0:
            raise ValueError("the inbox lease must be positive")
        self.engine = engine
        self.deliveries = deliveries
        self.lease = timedelta(seconds=lease)
        self.poll = poll
        self.keep = keep
        self.owner = new_owner()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._life = threading.Lock()
        self._next_sweep = 0.0

    # accepting -----------------------------------------------------------------------------------------
    def accept(self, question: Question) -> int | None:
        """Write the question, leased to this process; its row id, or None when the event was accepted before
        (a retry, or the same event delivered to another process)."""
        self.start()
        incoming = question.incoming
        values = self._values(question.scope, question.agent, incoming, question.reply_to, PENDING)
        values.update(key=question.key[:400], confirmed=question.confirmed)
        with sqlite_writer(self.engine), self.engine.begin() as conn:
            if not insert_ignore(conn, ROWS, values):
                return None
            return int(conn.execute(select(_c.id).where(_c.key == values["key"])).scalar_one())

    def _values(self, scope: str, agent: str, incoming: Incoming, reply_to: Target, status: str) -> dict[str, Any]:
        speaker = incoming.speaker
        now = utcnow()
        return {"scope": scope, "agent": agent, "platform": platform_of(scope), "kind": incoming.kind,
                "text": incoming.text, "speaker_id": speaker.id if speaker else "",
                "speaker_name": speaker.name if speaker else "", "thread": incoming.thread[:200],
                "reply_channel": reply_to.channel[:200], "reply_thread": reply_to.thread[:200],
                "reply_user": reply_to.user[:200], "status": status, "owner": self.owner,
                "lease_until": now + self.lease, "attempts": 0, "created_at": now}

    def confirm(self, ticket: int) -> None:
        """The question is for the bot (a thread follow-up checked in its lane)."""
        self._mine(ticket, (PENDING, RUNNING), confirmed=True)

    def settle(self, ticket: int) -> None:
        """The question's handling ran no turn (not for the bot, a bare mention): close it if still waiting."""
        self._mine(ticket, (PENDING,), status=SKIPPED, finished_at=utcnow())

    def close(self, ticket: int, status: str = FAILED) -> None:
        """Answered without landing a turn (the model failed and people were told)."""
        self._mine(ticket, (PENDING, RUNNING), status=status, finished_at=utcnow())

    def status(self, ticket: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(_c.status).where(_c.id == ticket)).scalar()

    def _mine(self, ticket: int, statuses: tuple[str, ...], **values: Any) -> bool:
        with sqlite_writer(self.engine), self.engine.begin() as conn:
            done = conn.execute(update(ROWS).where(_c.id == ticket, _c.owner == self.owner,
                                                   _c.status.in_(statuses)).values(**values).returning(_c.id))
            return done.first() is not None

    # claiming ------------------------------------------------------------------------------------------
    def claim(self, ticket: int, scope: str, agent: str, incoming: Incoming, reply_to: Target) -> int:
        """Wait until this turn may run, and mark it running; returns its row id. Ticket 0 (a timed event, the
        console) writes a row of its own that waits only for a running turn of the agent."""
        self.start()
        ordered = bool(ticket)
        if not ticket:
            ticket, running = self._insert_unordered(scope, agent, incoming, reply_to)
            if running:
                return ticket
        wait = self.poll
        while True:
            outcome = self._try_claim(ticket, scope, agent, ordered)
            if outcome:
                return ticket
            if outcome is None:
                raise LeaseLost(f"question {ticket} was taken over by another process")
            check_abandoned()
            time.sleep(wait)
            wait = min(wait * 1.5, 0.5)

    def _insert_unordered(self, scope: str, agent: str, incoming: Incoming, reply_to: Target) -> tuple[int, bool]:
        """The row of a turn without a ticket: written running at once when no turn of the agent runs (one
        statement, the usual case), else pending; returns (id, running)."""
        values = self._values(scope, agent, incoming, reply_to, RUNNING)
        values.update(key=f"turn:{uuid.uuid4().hex}", ordered=False, confirmed=incoming.kind == "message",
                      attempts=1)
        params = {f"v_{n}": v for n, v in values.items()}
        params.update(b_ticket=0, b_scope=scope, b_agent=agent, b_now=values["created_at"], b_owner=self.owner)
        with sqlite_writer(self.engine), self.engine.begin() as conn:
            _agent_lock(conn, scope, agent)
            got = conn.execute(_insert_unless_running(tuple(values)), params).scalar()
            if got is not None:
                return int(got), True
            values.update(status=PENDING, attempts=0)
            return int(conn.execute(ROWS.insert().values(**values).returning(_c.id)).scalar_one()), False

    def _try_claim(self, ticket: int, scope: str, agent: str, ordered: bool) -> bool | None:
        """One claim attempt: True (claimed), False (must wait), None (the row is no longer ours to run)."""
        now = utcnow()
        params = {"b_ticket": ticket, "b_scope": scope, "b_agent": agent, "b_now": now, "b_owner": self.owner,
                  "b_until": now + self.lease}
        with sqlite_writer(self.engine), self.engine.begin() as conn:
            _agent_lock(conn, scope, agent)
            if conn.execute(_claim(ordered), params).first() is not None:
                return True
            row = conn.execute(select(_c.owner, _c.status).where(_c.id == ticket)).first()
        if row is None or row.owner != self.owner or row.status != PENDING:
            return None
        return False

    def finish(self, session: Session, ticket: int) -> None:
        """Mark the question answered inside the turn's landing transaction: the turn lands and its question is
        answered together, or neither (LeaseLost when another process took the question over)."""
        done = session.execute(update(ROWS).where(_c.id == ticket, _c.owner == self.owner, _c.status == RUNNING)
                               .values(status=DONE, finished_at=utcnow()).returning(_c.id)).first()
        if done is None:
            raise LeaseLost(f"question {ticket} was taken over by another process; the turn is not kept")

    # leases and takeover ---------------------------------------------------------------------------------
    def renew(self) -> int:
        """Extend the leases of every open row of this process."""
        with sqlite_writer(self.engine), self.engine.begin() as conn:
            result = conn.execute(update(ROWS).where(_c.owner == self.owner, _c.status.in_(OPEN))
                                  .values(lease_until=utcnow() + self.lease).returning(_c.id))
            return len(result.all())

    def take_over(self) -> list[int]:
        """Answer the questions whose process stopped renewing their lease, for the platforms this process can
        post to: each with the apology, once. Returns the row ids taken over."""
        platforms = self.deliveries.platforms()
        if not platforms:
            return []
        now = utcnow()
        with self.engine.connect() as conn:
            expired = list(conn.execute(select(_c.id).where(_c.status.in_(OPEN), _c.lease_until < now,
                                                            _c.platform.in_(platforms)).order_by(_c.id)).scalars())
        taken = []
        for row_id in expired:
            row = self._take(row_id, now)
            if row is not None:
                self._report(row)
                taken.append(row_id)
        return taken

    def _take(self, row_id: int, now: datetime) -> Any:
        with sqlite_writer(self.engine), self.engine.begin() as conn:
            got = conn.execute(update(ROWS).where(_c.id == row_id, _c.status.in_(OPEN), _c.lease_until < now)
                               .values(status=REPORTING, owner=self.owner, lease_until=now + self.lease,
                                       attempts=_c.attempts + 1).returning(_c.id)).first()
            if got is None:
                return None  # another process took it first
            return conn.execute(select(ROWS).where(_c.id == row_id)).first()

    def _report(self, row: Any) -> None:
        if row.kind != "message" or not row.confirmed:  # a timed event is retried by its firing; chatter is not
            self._mine(row.id, (REPORTING,), status=SKIPPED, finished_at=utcnow())
            return
        target = Target(row.scope, row.reply_channel, row.reply_thread, row.reply_user)
        log.warning("question %s in %s was interrupted (its process stopped); telling %s", row.id, row.scope,
                    row.speaker_name or "its asker")
        try:
            self.deliveries.deliver(target, APOLOGY.format(excerpt=excerpt(row.text)))
        except Exception:  # logged, and the row is closed: an apology is never posted twice
            log.exception("could not tell %s that question %s was interrupted", target, row.id)
        self._mine(row.id, (REPORTING,), status=REPORTED, finished_at=utcnow())

    def sweep(self, now: datetime | None = None) -> None:
        """Forget closed rows older than `keep` (their keys stop deduplicating: platforms retry within minutes)."""
        cutoff = (now or utcnow()) - self.keep
        with sqlite_writer(self.engine), self.engine.begin() as conn:
            conn.execute(delete(ROWS).where(_c.status.notin_(OPEN), _c.created_at < cutoff))

    def release(self) -> None:
        """At shutdown: this process's open rows expire at once, so the next start (or another process) answers
        them without waiting out the lease."""
        past = utcnow() - timedelta(seconds=1)
        with sqlite_writer(self.engine), self.engine.begin() as conn:
            conn.execute(update(ROWS).where(_c.owner == self.owner, _c.status.in_(OPEN)).values(lease_until=past))

    # life ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Renew leases (and take over expired rows) in a daemon thread, every quarter lease."""
        with self._life:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._loop, name="membot-inbox", daemon=True)
                self._thread.start()

    def tick(self) -> None:
        self.renew()
        self.take_over()
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + 600
            self.sweep()

    def _loop(self) -> None:
        every = max(self.lease.total_seconds() / 4, 0.1)
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("inbox pass failed")
            self._stop.wait(every)

    def stop(self) -> None:
        """Stop renewing and release this process's open rows (call after the turn pool closed)."""
        with self._life:
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        try:
            self.release()
        except Exception:
            log.warning("could not release the inbox leases; they run out in %s", self.lease, exc_info=True)


def _blocking(ordered: bool) -> Exists:
    """Another turn of the agent (b_scope, b_agent) that the turn b_ticket waits for at b_now: a running one, and
    for a platform question the older questions other processes (not b_owner) took, so each agent answers in
    order."""
    other = ROWS.alias("other")
    waits_for = other.c.status == RUNNING
    if ordered:
        waits_for = or_(waits_for, and_(other.c.status == PENDING, other.c.id < bindparam("b_ticket"),
                                        other.c.owner != bindparam("b_owner")))
    return select(other.c.id).where(other.c.scope == bindparam("b_scope"), other.c.agent == bindparam("b_agent"),
                                    other.c.id != bindparam("b_ticket"), other.c.lease_until > bindparam("b_now"),
                                    waits_for).exists()


# The claim statements are built once, with bound parameters: building them for each claim was most of a
# claim's time, and it was spent holding SQLite's one write lock.
@functools.cache
def _insert_unless_running(names: tuple[str, ...]) -> Any:
    """INSERT a row (values v_<column>) unless a turn of its agent runs."""
    row = select(*[bindparam(f"v_{n}", type_=ROWS.c[n].type) for n in names]).where(~_blocking(False))
    return ROWS.insert().from_select(list(names), row).returning(_c.id)


@functools.cache
def _claim(ordered: bool) -> Any:
    """Mark b_ticket running until b_until, unless it must wait."""
    return (update(ROWS).where(_c.id == bindparam("b_ticket"), _c.owner == bindparam("b_owner"),
                               _c.status == PENDING, ~_blocking(ordered))
            .values(status=RUNNING, lease_until=bindparam("b_until"), attempts=_c.attempts + 1)
            .returning(_c.id))


def _agent_lock(conn: Connection, scope: str, agent: str) -> None:
    """Serialize claims of one agent: on PostgreSQL an advisory lock until the transaction ends; SQLite has one
    writer, and the claim is a single UPDATE."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(f"agent:{scope}\n{agent}")})

