"""Firing schedules: claim a firing exactly once in SQL (with a leased firing row, agent/schedule/firings.py),
run the agent's turn on a timed-event input, and deliver its replies, each once; a firing whose process died is
taken over. Adding, listing and cancelling schedules is the book's (agent/schedule/book.py)."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from agent.db.models import Agent, as_utc
from agent.schedule.book import ScheduleLimits
from agent.schedule.book import describe as describe  # re-exported: callers describe rows from here too
from agent.schedule.delivery import DeliveryRegistry, Target
from agent.schedule.firings import DELIVERING, RUNNING, Firings, ScheduleFiring, new_owner, record, texts_of
from agent.schedule.model import ACTIVE, CANCELLED, DONE, MISSED, Schedule
from agent.schedule.parse import build_trigger, catch_up, local, span
from agent.turns import Incoming, TurnResult

log = logging.getLogger(__name__)
FIRED, SKIPPED, RETIRED = "fired", "skipped", "retired"


@dataclass
class Firing:
    """What one due job did: fired (a turn runs), missed (a notice goes out), skipped (not due, or claimed
    elsewhere) or retired (cancelled, or its agent is gone). `delivered` resolves to the texts posted."""

    schedule_id: int
    outcome: str
    next_at: datetime | None
    delivered: Future[list[str]] = field(default_factory=Future)


@dataclass(frozen=True)
class _Claim:
    outcome: str
    row: Schedule | None = None
    at: datetime | None = None  # the firing time claimed (the latest one due)
    late: timedelta = timedelta(0)
    passed: int = 0  # earlier firings passed over while nothing ran
    next_at: datetime | None = None
    firing_id: int = 0
    text: str = ""  # the turn's input (fired) or the notice (missed)


class Turns(Protocol):
    """What firing needs of the agent service: queue an agent's turn."""

    def submit(self, agent_id: int, incoming: Incoming) -> Future[TurnResult]: ...

    @property
    def closing(self) -> bool:
        """True once shutdown began: turns are no longer taken, or are being abandoned."""


class ScheduleService:
    """Fires schedules: claims each due firing once, runs the agent's turn, delivers its replies."""

    def __init__(self, engine: Engine, agents: Turns, deliveries: DeliveryRegistry, limits: ScheduleLimits) -> None:
        self.engine = engine
        self.agents = agents
        self.deliveries = deliveries
        self.limits = limits
        self.firings = Firings(engine, new_owner())
        self._inflight: set[int] = set()  # firing ids this service works on: their leases are renewed
        self._inflight_lock = threading.Lock()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def get(self, schedule_id: int) -> Schedule | None:
        with self.session() as s:
            return s.get(Schedule, schedule_id)

    # firing --------------------------------------------------------------------------------------------
    def fire(self, schedule_id: int, now: datetime) -> Firing:
        claim = self._claim(schedule_id, now)
        firing = Firing(schedule_id, claim.outcome, claim.next_at)
        if claim.outcome == FIRED:
            assert claim.row is not None
            self._run_turn(claim.row, claim.firing_id, claim.text, firing.delivered)
        elif claim.outcome == MISSED:
            assert claim.row is not None
            self._deliver(claim.row, claim.firing_id, [claim.text], firing.delivered, stored=True)
        else:
            firing.delivered.set_result([])
        return firing

    def renew(self, now: datetime) -> None:
        """Extend the leases of the firings this service is working on (every scheduler pass)."""
        with self._inflight_lock:
            working = set(self._inflight)
        self.firings.renew(working, now + self.limits.lease)

    def resume(self, platform: str, now: datetime) -> list[Firing]:
        """Take over the firings of `platform` whose process stopped renewing their lease, and finish them."""
        resumed = []
        for firing_id in self.firings.expired(platform, now):
            taken = self.firings.take_over(firing_id, now, now + self.limits.lease)
            if taken is not None:
                resumed.append(self._finish(taken))
        return resumed

    def _finish(self, taken: ScheduleFiring) -> Firing:
        assert taken.id is not None
        firing = Firing(taken.schedule_id, taken.outcome, None)
        row = self.get(taken.schedule_id)
        if row is None:
            self.firings.posted(taken.id, 0, last=True)
            firing.delivered.set_result([])
            return firing
        log.warning("schedule #%s: taking over firing %s (attempt %s, was %s)", row.id, taken.id, taken.attempts,
                    taken.status)
        if taken.status == DELIVERING:
            self._deliver(row, taken.id, texts_of(taken), firing.delivered, stored=True, start=taken.sent)
        elif taken.attempts > self.limits.max_attempts:  # the turn keeps failing: people still get the reminder
            self._deliver(row, taken.id, [self._fallback(row)], firing.delivered)
        else:
            self._run_turn(row, taken.id, taken.event_text, firing.delivered)
        return firing

    def _claim(self, schedule_id: int, now: datetime) -> _Claim:
        """Record the firing in the row, in one UPDATE guarded by the row's revision: of two processes (or two
        passes) seeing the same due firing, exactly one claims it."""
        with self.session() as s:
            row = s.get(Schedule, schedule_id)
            if row is None or row.status != ACTIVE:
                return _Claim(RETIRED)
            if row.next_fire_at is None or s.get(Agent, row.agent_id) is None:
                return self._retire(s, row, now)
            due = as_utc(row.next_fire_at)
            if due > now:
                return _Claim(SKIPPED, next_at=due)
            at, passed, following = catch_up(build_trigger(row.trigger, row.timezone, due), due, now)
            if following is not None:
                following = following.astimezone(timezone.utc)  # SQLite keeps no zone: store UTC
            late = now - at
            fired = late <= self.limits.grace
            values: dict[str, object] = {"next_fire_at": following, "revision": row.revision + 1}
            values["missed_count"] = row.missed_count + passed + (0 if fired else 1)
            if fired:
                values.update(last_fired_at=now, fire_count=row.fire_count + 1)
            if following is None:
                values.update(status=DONE if fired else MISSED, ended_at=now)
            claim = _Claim(FIRED if fired else MISSED, row, at, late, passed, following)
            text = self._event_text(claim) if fired else self._missed_notice(claim)
            firing_id = self._swap(s, row, values, self._firing_row(claim, text, now))
            if not firing_id:
                s.refresh(row)
                return _Claim(SKIPPED, next_at=as_utc(row.next_fire_at) if row.status == ACTIVE and
                              row.next_fire_at else None)
            return replace(claim, firing_id=firing_id, text=text)

    def _firing_row(self, claim: _Claim, text: str, now: datetime) -> dict[str, object]:
        """A fired firing waits for its turn (running); a missed one has its notice ready (delivering)."""
        assert claim.row is not None
        fired = claim.outcome == FIRED
        return {"schedule_id": claim.row.id, "platform": claim.row.platform, "due_at": claim.at,
                "outcome": claim.outcome, "event_text": text, "status": RUNNING if fired else DELIVERING,
                "owner": self.firings.owner, "lease_until": now + self.limits.lease,
                "texts": "" if fired else json.dumps([text]), "sent": 0, "attempts": 1, "created_at": now}

    @staticmethod
    def _swap(s: Session, row: Schedule, values: dict[str, object], firing: dict[str, object] | None = None) -> int:
        """Apply `values` if the row is unchanged; the firing's row is written in the same transaction, so a
        claimed firing is never lost. Returns the firing's id (1 without a firing), or 0 when not claimed."""
        conn = s.connection()
        result = conn.execute(
            update(Schedule).where(col(Schedule.id) == row.id, col(Schedule.revision) == row.revision,
                                   col(Schedule.status) == ACTIVE).values(**values))
        firing_id = 0 if result.rowcount != 1 else record(conn, firing) if firing else 1
        s.commit()
        return firing_id

    def _retire(self, s: Session, row: Schedule, now: datetime) -> _Claim:
        self._swap(s, row, {"status": CANCELLED, "ended_at": now, "revision": row.revision + 1})
        log.info("schedule #%s retired: its agent no longer exists", row.id)
        return _Claim(RETIRED)

    def _run_turn(self, row: Schedule, firing_id: int, text: str, delivered: Future[list[str]]) -> None:
        self._working(firing_id, True)
        incoming = Incoming(text, None, row.thread, kind="event")
        try:
            turn = self.agents.submit(row.agent_id, incoming)
        except Exception:
            if self.agents.closing:
                self._later(row, firing_id, delivered)
                return
            log.exception("schedule #%s: could not start the agent's turn", row.id)
            self._deliver(row, firing_id, [self._fallback(row)], delivered)
            return
        turn.add_done_callback(lambda f: self._after(row, firing_id, f, delivered))

    def _after(self, row: Schedule, firing_id: int, turn: Future[TurnResult], delivered: Future[list[str]]) -> None:
        if self.agents.closing and (turn.cancelled() or turn.exception() is not None):
            self._later(row, firing_id, delivered)
        else:
            self._deliver(row, firing_id, self._replies(row, turn), delivered)

    def _later(self, row: Schedule, firing_id: int, delivered: Future[list[str]]) -> None:
        """Shutdown cut the firing's turn short: its lease runs out and a process takes it over (this one, at
        its next start), so the reminder is late, never lost."""
        log.info("schedule #%s: shutdown interrupted firing %s; it is taken over after the next start", row.id,
                 firing_id)
        self._working(firing_id, False)
        delivered.set_result([])

    def _replies(self, row: Schedule, turn: Future[TurnResult]) -> list[str]:
        try:
            result = turn.result()
        except Exception:
            log.exception("schedule #%s: the agent's turn failed", row.id)
            return [self._fallback(row)]
        if result.failed:  # the model is unreachable: people still get their reminder
            log.warning("schedule #%s: %s", row.id, result.notice)
            return [self._fallback(row)]
        return list(result.replies)

    def _deliver(self, row: Schedule, firing_id: int, texts: list[str], delivered: Future[list[str]],
                 stored: bool = False, start: int = 0) -> None:
        """Post `texts[start:]`, recording each as posted; stop if another process has taken the firing over."""
        self._working(firing_id, True)
        target = Target(row.scope, row.channel, row.thread, row.user)
        sent: list[str] = []
        try:
            if not stored and not self.firings.replies_ready(firing_id, texts):
                log.warning("schedule #%s: firing %s was taken over; not posting", row.id, firing_id)
                return
            for i in range(start, len(texts)):
                if not self.firings.still_mine(firing_id):
                    return
                try:
                    self.deliveries.deliver(target, texts[i])
                    sent.append(texts[i])
                except Exception:
                    log.exception("schedule #%s: delivery to %s failed", row.id, target)
                self.firings.posted(firing_id, i + 1, last=i + 1 == len(texts))
            if start >= len(texts):
                self.firings.posted(firing_id, len(texts), last=True)
        except Exception:
            log.exception("schedule #%s: firing %s could not be recorded; its lease runs out and it is retried",
                          row.id, firing_id)
        finally:
            self._working(firing_id, False)
            delivered.set_result(sent)

    def _working(self, firing_id: int, on: bool) -> None:
        with self._inflight_lock:
            (self._inflight.add if on else self._inflight.discard)(firing_id)

    # texts ---------------------------------------------------------------------------------------------
    @staticmethod
    def _event_text(claim: _Claim) -> str:
        row = claim.row
        assert row is not None and row.id is not None
        parts = [f"Schedule #{row.id} is due ({row.spec}, {row.timezone}; set by {row.created_by or 'someone'}).",
                 f"Its text: {row.text}"]
        if claim.late > timedelta(minutes=1):
            parts.append(f"It runs {span(claim.late)} late: the bot was offline.")
        if claim.passed:
            parts.append(f"{claim.passed} earlier firing(s) were missed while the bot was offline.")
        parts.append(f"Next firing: {local(claim.next_at, row.timezone)}." if claim.next_at else
                     "It does not repeat.")
        parts.append("Decide what to post in the channel with send_message (for a reminder: remind the people).")
        return " ".join(parts)

    @staticmethod
    def _missed_notice(claim: _Claim) -> str:
        row = claim.row
        assert row is not None and claim.at is not None
        text = (f"⏰ Missed schedule #{row.id} ({row.spec}, {row.timezone}): it was due "
                f"{local(claim.at, row.timezone)}, {span(claim.late)} ago, while I was offline. It said: {row.text}")
        return text + (f"\nNext firing: {local(claim.next_at, row.timezone)}." if claim.next_at else "")

    @staticmethod
    def _fallback(row: Schedule) -> str:
        return f"⏰ Reminder #{row.id}: {row.text}"
