"""The schedule book: add, list and cancel a channel's schedules within its limits, in the caller's session,
and mirror them onto the job board once that session commits. People (`/schedule`) and the agent's tools use it;
firing is the schedule service's (agent/schedule/service.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, func, select

from agent.db.models import Agent, as_utc, utcnow
from agent.schedule.board import JobBoard, JobSpec
from agent.schedule.delivery import target_for
from agent.schedule.model import ACTIVE, CANCELLED, DRAFT, ChannelZone, Schedule
from agent.schedule.parse import (
    Plan,
    ScheduleError,
    build_trigger,
    local,
    parse_when,
    shortest_gap,
    span,
    split_when,
    zone_of,
)

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
STALE_DRAFT = timedelta(days=1)  # no turn runs this long: its draft was left by a killed process
_CHANGES = "membot.schedule_changes"  # key in Session.info: the board changes waiting for the commit


@dataclass(frozen=True)
class ScheduleLimits:
    per_channel: int = 25  # active schedules of one channel's agent
    min_interval: timedelta = timedelta(minutes=10)  # between firings of a repeating schedule
    grace: timedelta = timedelta(minutes=15)  # a firing this late (the bot was down) still runs, once
    default_zone: str = "UTC"
    max_text: int = 2000
    lease: timedelta = timedelta(minutes=2)  # a firing's process renews it every pass; a dead one's runs out
    max_attempts: int = 3  # turns tried for one firing (each retake is one) before the plain reminder is posted


class ScheduleBook:
    def __init__(self, engine: Engine, board: JobBoard, limits: ScheduleLimits, clock: Clock) -> None:
        self.engine = engine
        self.board = board
        self.limits = limits
        self.clock = clock

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # people and agents ---------------------------------------------------------------------------------
    def zone(self, s: Session, agent_id: int) -> str:
        row = s.get(ChannelZone, agent_id)
        return row.timezone if row else self.limits.default_zone

    def set_zone(self, s: Session, agent_id: int, zone: str) -> str:
        zone_of(zone)
        row = s.get(ChannelZone, agent_id) or ChannelZone(agent_id=agent_id, timezone=zone)
        row.timezone = zone
        s.add(row)
        s.flush()
        return zone

    def read_when(self, s: Session, agent_id: int, when: str, zone: str | None = None) -> Plan:
        return parse_when(when, self.clock(), zone or self.zone(s, agent_id))

    def read_line(self, s: Session, agent_id: int, line: str) -> tuple[Plan, str]:
        """A `WHEN WHAT` line, as typed after `/schedule add`."""
        return split_when(line, self.clock(), self.zone(s, agent_id))

    def add(self, s: Session, agent: Agent, plan: Plan, text: str, created_by: str, thread: str = "") -> Schedule:
        """Add a schedule in session `s`; its job goes on the board at `publish(s)`, once `s` has committed."""
        row = self._new_row(s, agent, plan, text, created_by, thread)
        s.add(row)
        s.flush()
        s.info.setdefault(_CHANGES, []).append((self.board.put, self._job(row)))
        return row

    def draft(self, agent: Agent, plan: Plan, text: str, created_by: str, thread: str = "",
              also: int = 0) -> Schedule:
        """Add a schedule as a draft in a short transaction of its own: it has its id, and nothing fires it until
        a turn's landing activates it (agent/schedule/drafts.py). `also`: the caller's drafts not yet active."""
        with self.session() as s:
            row = self._new_row(s, agent, plan, text, created_by, thread, also)
            row.status = DRAFT
            s.add(row)
            s.commit()
            return row

    def _new_row(self, s: Session, agent: Agent, plan: Plan, text: str, created_by: str, thread: str,
                 also: int = 0) -> Schedule:
        text = text.strip()
        if not text:
            raise ScheduleError("Say what the schedule is about: its text is empty.")
        if len(text) > self.limits.max_text:
            raise ScheduleError(f"The text is {len(text)} characters; keep it under {self.limits.max_text}.")
        self._check_interval(plan)
        agent_id = int(agent.id or 0)
        active = s.exec(select(func.count()).select_from(Schedule).where(
            Schedule.agent_id == agent_id, Schedule.status == ACTIVE)).one() + also
        if active >= self.limits.per_channel:
            raise ScheduleError(f"This channel already has {active} active schedules, the most allowed. "
                                "Cancel one first (list them to see their ids).")
        target = target_for(agent, thread)
        return Schedule(agent_id=agent_id, platform=target.platform, scope=target.scope, channel=target.channel,
                        user=target.user, thread=thread, text=text, spec=plan.spec, trigger=plan.trigger,
                        timezone=plan.zone, created_by=created_by[:200], next_fire_at=plan.first)

    def _check_interval(self, plan: Plan) -> None:
        if not plan.recurring:
            return
        gap = shortest_gap(build_trigger(plan.trigger, plan.zone, plan.first), plan.first)
        if gap is not None and gap < self.limits.min_interval:
            raise ScheduleError(f"{plan.spec} would fire {span(gap)} apart; repeating schedules must be at least "
                                f"{span(self.limits.min_interval)} apart. Choose a longer interval.")

    def listing(self, s: Session, agent_id: int) -> list[Schedule]:
        return list(s.exec(select(Schedule).where(Schedule.agent_id == agent_id, Schedule.status == ACTIVE)
                           .order_by(col(Schedule.next_fire_at), col(Schedule.id))).all())

    def cancel(self, s: Session, agent_id: int, schedule_id: int) -> Schedule:
        row = self.cancellable(s, agent_id, schedule_id)
        row.status, row.ended_at, row.revision = CANCELLED, self.clock(), row.revision + 1
        s.add(row)
        s.flush()
        s.info.setdefault(_CHANGES, []).append((self.board.remove, row.platform, schedule_id))
        return row

    def cancellable(self, s: Session, agent_id: int, schedule_id: int) -> Schedule:
        """The active schedule `schedule_id` of the agent, or a ScheduleError saying why not."""
        row = s.get(Schedule, schedule_id)
        if row is None or row.agent_id != agent_id or row.status == DRAFT:
            raise ScheduleError(f"There is no schedule #{schedule_id} in this channel. List them to see their ids.")
        if row.status != ACTIVE:
            raise ScheduleError(f"Schedule #{schedule_id} has already ended ({row.status}).")
        return row

    # the job board -----------------------------------------------------------------------------------
    def commit(self, s: Session) -> None:
        """Commit `s`, then publish its schedule changes."""
        s.commit()
        self.publish(s)

    def publish(self, s: Session) -> None:
        """Put the schedules added or cancelled in `s` on the board; call it once `s` has committed. A session
        rolled back is never published: its schedules never existed."""
        for fn, *args in s.info.pop(_CHANGES, []):
            self._quietly(fn, *args)

    def announce(self, added: list[Schedule], cancelled: list[Schedule]) -> None:
        """Put committed schedules on the board and take cancelled ones off it."""
        for row in added:
            self._quietly(self.board.put, self._job(row))
        for row in cancelled:
            self._quietly(self.board.remove, row.platform, int(row.id or 0))

    def reconcile(self, platform: str) -> None:
        """Make the job store hold exactly the active schedules of `platform` (the rows are the truth), and
        clear drafts left by turns that were killed before they landed."""
        with self.session() as s:
            s.exec(delete(Schedule).where(col(Schedule.platform) == platform, col(Schedule.status) == DRAFT,
                                          col(Schedule.created_at) < utcnow() - STALE_DRAFT))
            s.commit()
            active = set(s.exec(select(Schedule.id).where(Schedule.platform == platform,
                                                          Schedule.status == ACTIVE)).all())
            have = self.board.job_ids(platform)
            for schedule_id in sorted(i for i in active - have if i is not None):
                row = s.get(Schedule, schedule_id)
                if row is not None and row.next_fire_at is not None:
                    self.board.put(self._job(row))
        for schedule_id in have - active:
            self.board.remove(platform, schedule_id)

    @staticmethod
    def _job(row: Schedule) -> JobSpec:
        assert row.id is not None and row.next_fire_at is not None
        at = as_utc(row.next_fire_at)
        return JobSpec(row.id, row.platform, build_trigger(row.trigger, row.timezone, at), at)

    @staticmethod
    def _quietly(fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # the row is committed; the leader's next pass mirrors it into the store
            log.warning("could not update the job store now", exc_info=True)


def describe(row: Schedule) -> str:
    """One line about a schedule, for people and the model: id, when, next firing, text, author."""
    when = f"{row.spec} ({row.timezone})"
    if row.trigger != "once" and row.next_fire_at is not None:
        when += f", next {local(as_utc(row.next_fire_at), row.timezone)}"
    by = f" (by {row.created_by})" if row.created_by else ""
    return f"#{row.id} {when}: {row.text}{by}"
