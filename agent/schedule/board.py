"""The job board: APScheduler 3's SQL job stores (one per platform) behind the few calls membot makes.

Only APScheduler's public API is used. Its scheduler is one that never runs a job (its `wakeup`, the extension
point APScheduler documents for custom schedulers, does nothing): it keeps the stores and computes next run
times, while the Timer (agent/schedule/timer.py) runs the due jobs with its own clock.
A job holds only a schedule id and its trigger (agent/schedule/jobs.py), never an object.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy.engine import Engine

from agent.db.schema import schema_lock
from agent.schedule.jobs import FIRE


def job_id(schedule_id: int) -> str:
    return f"schedule-{schedule_id}"


@dataclass(frozen=True)
class JobSpec:
    """What a job holds: the schedule's id, its trigger and its next run; its store is its platform's."""

    schedule_id: int
    platform: str
    trigger: BaseTrigger
    next_at: datetime


class _JobStore(SQLAlchemyJobStore):
    def start(self, scheduler: Any, alias: str) -> None:
        # It creates its table if missing; two processes doing that at once on PostgreSQL fail one of them.
        with schema_lock(self.engine):
            super().start(scheduler, alias)

    def shutdown(self) -> None:
        """The engine is shared and closed by its owner; the base class would dispose of it here."""


class _StoreKeeper(BaseScheduler):
    def wakeup(self) -> None:
        """APScheduler calls this when jobs may be due; here nothing runs them but the Timer."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)


class JobBoard:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._scheduler = _StoreKeeper(timezone=timezone.utc)
        self._platforms: set[str] = set()
        self._lock = threading.RLock()
        self._closed = False

    def put(self, spec: JobSpec) -> None:
        """Add or replace the job of a schedule."""
        if self._open(spec.platform):
            self._scheduler.add_job(FIRE, trigger=spec.trigger, args=[spec.schedule_id],
                                    id=job_id(spec.schedule_id), name=f"schedule #{spec.schedule_id}",
                                    jobstore=spec.platform, next_run_time=spec.next_at, replace_existing=True,
                                    misfire_grace_time=None, coalesce=True, max_instances=1)

    def remove(self, platform: str, schedule_id: int) -> None:
        self.drop(platform, job_id(schedule_id))

    def drop(self, platform: str, ident: str) -> None:
        """Remove a job by its id; a job already gone is fine."""
        if self._open(platform):
            try:
                self._scheduler.remove_job(ident, jobstore=platform)
            except JobLookupError:
                pass

    def move(self, platform: str, ident: str, next_at: datetime) -> None:
        """Set when a job runs next. Raises JobLookupError when it was removed meanwhile."""
        if self._open(platform):
            self._scheduler.modify_job(ident, jobstore=platform, next_run_time=next_at)

    def job(self, platform: str, schedule_id: int) -> Job | None:
        if not self._open(platform):
            return None
        return self._scheduler.get_job(job_id(schedule_id), jobstore=platform)

    def jobs(self, platform: str) -> list[Job]:
        """The platform's jobs, soonest first."""
        return self._scheduler.get_jobs(jobstore=platform) if self._open(platform) else []

    def job_ids(self, platform: str) -> set[int]:
        return {int(j.id.rsplit("-", 1)[1]) for j in self.jobs(platform) if j.id.startswith("schedule-")}

    def due(self, platform: str, now: datetime) -> list[Job]:
        return [j for j in self.jobs(platform) if j.next_run_time is not None and j.next_run_time <= now]

    def next_run(self, platform: str) -> datetime | None:
        times = [j.next_run_time for j in self.jobs(platform) if j.next_run_time is not None]
        return min(times, default=None)

    def close(self) -> None:
        """No more changes: a job added later is mirrored from its schedule row by the next leader."""
        with self._lock:
            self._closed = True
            if self._scheduler.state != STATE_STOPPED:
                self._scheduler.shutdown(wait=False)

    def _open(self, platform: str) -> bool:
        """Make sure the platform's store is attached; False once closed."""
        with self._lock:
            if self._closed:
                return False
            if self._scheduler.state == STATE_STOPPED:
                self._scheduler.start(paused=True)  # jobs reach the stores only once it is started
            if platform not in self._platforms:
                store = _JobStore(engine=self.engine, tablename=f"apscheduler_jobs_{platform}")
                self._scheduler.add_jobstore(store, alias=platform)
                self._platforms.add(platform)
            return True
