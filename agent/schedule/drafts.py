"""One turn's schedule changes. A schedule the agent adds is written at once as a draft, in a short transaction
of its own (so the tool can name its id and the turn holds no write lock while the model thinks); the turn's
landing transaction activates it, and only then does it go on the job board. Cancels wait for the landing too.
A turn that fails deletes its drafts; one killed leaves inert drafts, which the book's reconcile clears."""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlmodel import Session, col, delete

from agent.db.models import Agent
from agent.schedule.book import ScheduleBook
from agent.schedule.model import ACTIVE, CANCELLED, DRAFT, Schedule
from agent.schedule.parse import Plan, ScheduleError

log = logging.getLogger(__name__)


class TurnSchedules:
    def __init__(self, book: ScheduleBook) -> None:
        self.book = book
        self.drafts: list[Schedule] = []  # added this turn, activated at `land`
        self.dropped: list[Schedule] = []  # drafts cancelled within the turn, stored as cancelled at `land`
        self.cancels: list[Schedule] = []  # active schedules cancelled this turn

    def zone(self, s: Session, agent_id: int) -> str:
        return self.book.zone(s, agent_id)

    def read_when(self, s: Session, agent_id: int, when: str, zone: str | None = None) -> Plan:
        return self.book.read_when(s, agent_id, when, zone)

    def add(self, agent: Agent, plan: Plan, text: str, created_by: str, thread: str = "") -> Schedule:
        also = len(self.drafts) - len(self.cancels)  # this turn's changes count against the channel's limit
        row = self.book.draft(agent, plan, text, created_by, thread, also=also)
        self.drafts.append(row)
        return row

    def listing(self, s: Session, agent_id: int) -> list[Schedule]:
        """The active schedules as they will be once this turn lands."""
        gone = {r.id for r in self.cancels}
        rows = [r for r in self.book.listing(s, agent_id) if r.id not in gone] + self.drafts
        return sorted(rows, key=lambda r: (r.next_fire_at is None, r.next_fire_at, r.id))

    def cancel(self, s: Session, agent_id: int, schedule_id: int) -> Schedule:
        draft = next((r for r in self.drafts if r.id == schedule_id), None)
        if draft is not None:
            self.drafts.remove(draft)
            self.dropped.append(draft)
            draft.status = CANCELLED
            return draft
        if any(r.id == schedule_id for r in self.cancels):
            raise ScheduleError(f"Schedule #{schedule_id} has already ended ({CANCELLED}).")
        row = self.book.cancellable(s, agent_id, schedule_id)
        self.cancels.append(row)
        return row

    def land(self, s: Session) -> None:
        """Apply the changes in the turn's landing transaction `s`."""
        if self.drafts:
            s.execute(update(Schedule).where(col(Schedule.id).in_([r.id for r in self.drafts]),
                                             col(Schedule.status) == DRAFT).values(status=ACTIVE))
        now = self.book.clock()
        if self.dropped:
            s.execute(update(Schedule).where(col(Schedule.id).in_([r.id for r in self.dropped]),
                                             col(Schedule.status) == DRAFT).values(status=CANCELLED, ended_at=now))
        for row in self.cancels:  # a schedule that ended meanwhile (fired for the last time) stays as it is
            s.execute(update(Schedule).where(col(Schedule.id) == row.id, col(Schedule.status) == ACTIVE)
                      .values(status=CANCELLED, ended_at=now, revision=col(Schedule.revision) + 1))

    def publish(self) -> None:
        """Once the landing committed: the new schedules go on the job board, the cancelled ones leave it."""
        for row in self.drafts:
            row.status = ACTIVE
        self.book.announce(self.drafts, self.cancels)
        self._clear()

    def discard(self) -> None:
        """The turn failed: its drafts never existed."""
        try:
            if self.drafts or self.dropped:
                with self.book.session() as s:
                    self._delete(s, self.drafts + self.dropped)
                    s.commit()
        except BaseException:  # abandoned at shutdown, or the database is gone: a draft left behind is inert
            log.warning("could not delete a failed turn's draft schedules; the next reconcile will", exc_info=True)
        self._clear()

    @staticmethod
    def _delete(s: Session, rows: list[Schedule]) -> None:
        s.exec(delete(Schedule).where(col(Schedule.id).in_([r.id for r in rows]),  # type: ignore[call-overload]
                                      col(Schedule.status) == DRAFT))

    def _clear(self) -> None:
        self.drafts, self.dropped, self.cancels = [], [], []
