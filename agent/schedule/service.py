"""Firing schedules: claim a firing exactly once in SQL, run the agent's turn on a timed-event input, and deliver
its replies. Adding, listing and cancelling schedules is the book's (agent/schedule/book.py)."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from agent.db.models import Agent, as_utc
from agent.schedule.book import ScheduleLimits
from agent.schedule.book import describe as describe  # re-exported: callers describe rows from here too
from agent.schedule.delivery import DeliveryRegistry, Target
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


class Turns(Protocol):
    """What firing needs of the agent service: queue an agent's turn."""

    def submit(self, agent_id: int, incoming: Incoming) -> Future[TurnResult]: ...


class ScheduleService:
    """Fires schedules: claims each due firing once, runs the agent's turn, delivers its replies."""

    def __init__(self, engine: Engine, agents: Turns, deliveries: DeliveryRegistry, limits: ScheduleLimits) -> None:
        self.engine = engine
        self.agents = agents
        self.deliveries = deliveries
        self.limits = limits

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
            self._run_turn(claim, firing.delivered)
        elif claim.outcome == MISSED:
            self._deliver(claim, [self._missed_notice(claim)], firing.delivered)
        else:
            firing.delivered.set_result([])
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
            if not self._swap(s, row, values):
                s.refresh(row)
                return _Claim(SKIPPED, next_at=as_utc(row.next_fire_at) if row.status == ACTIVE and
                              row.next_fire_at else None)
            return _Claim(FIRED if fired else MISSED, row, at, late, passed, following)

    @staticmethod
    def _swap(s: Session, row: Schedule, values: dict[str, object]) -> bool:
        result = s.connection().execute(
            update(Schedule).where(col(Schedule.id) == row.id, col(Schedule.revision) == row.revision,
                                   col(Schedule.status) == ACTIVE).values(**values))
        s.commit()
        return result.rowcount == 1

    def _retire(self, s: Session, row: Schedule, now: datetime) -> _Claim:
        self._swap(s, row, {"status": CANCELLED, "ended_at": now, "revision": row.revision + 1})
        log.info("schedule #%s retired: its agent no longer exists", row.id)
        return _Claim(RETIRED)

    def _run_turn(self, claim: _Claim, delivered: Future[list[str]]) -> None:
        row = claim.row
        assert row is not None
        incoming = Incoming(self._event_text(claim), None, row.thread, kind="event")
        try:
            turn = self.agents.submit(row.agent_id, incoming)
        except Exception:
            log.exception("schedule #%s: could not start the agent's turn", row.id)
            self._deliver(claim, [self._fallback(row)], delivered)
            return
        turn.add_done_callback(lambda f: self._deliver(claim, self._replies(row, f), delivered))

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

    def _deliver(self, claim: _Claim, texts: list[str], delivered: Future[list[str]]) -> None:
        row = claim.row
        assert row is not None
        target = Target(row.scope, row.channel, row.thread, row.user)
        sent: list[str] = []
        try:
            for text in texts:
                try:
                    self.deliveries.deliver(target, text)
                    sent.append(text)
                except Exception:
                    log.exception("schedule #%s: delivery to %s failed", row.id, target)
        finally:
            delivered.set_result(sent)

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
