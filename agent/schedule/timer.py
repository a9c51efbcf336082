"""A thin facade over APScheduler 3: one SQL job store per platform, run only by that platform's leader.

Every process starts the scheduler paused, so it can add and remove jobs in the shared stores; `start()` lets it
run. Each pass (`tick`) keeps leadership (one lock per platform it can deliver to), then runs the due jobs of the
platforms it leads with `run_pending(now)`. Time comes from an injectable clock, so tests drive passes by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import select
from sqlalchemy.engine import Engine

from agent.db.schema import schema_lock
from agent.schedule.jobs import FIRE, running
from agent.schedule.leader import Lock, leader_lock

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


def job_id(schedule_id: int) -> str:
    return f"schedule-{schedule_id}"


@dataclass(frozen=True)
class JobSpec:
    """What a job holds: the schedule's id, its trigger and its next run; its store is its platform's."""

    schedule_id: int
    platform: str
    trigger: BaseTrigger
    next_at: datetime


class Outcome(Protocol):
    @property
    def next_at(self) -> datetime | None:
        """When the job should run next (None: remove it), as the schedule row says after the firing."""


class Jobs(Protocol):
    """The timer's other half (the schedule service): runs a firing, and mirrors the schedules into the store."""

    def fire(self, schedule_id: int, now: datetime) -> Outcome: ...

    def reconcile(self, platform: str) -> None: ...

    def renew(self, now: datetime) -> None:
        """Keep the leases of the firings this process is still working on."""

    def resume(self, platform: str, now: datetime) -> list[Any]:
        """Take over the firings of `platform` whose process died (their lease ran out)."""


class _JobStore(SQLAlchemyJobStore):
    def start(self, scheduler: Any, alias: str) -> None:
        # It creates its table if missing; two processes doing that at once on PostgreSQL fail one of them.
        with schema_lock(self.engine):
            super().start(scheduler, alias)

    def shutdown(self) -> None:
        """The engine is shared and closed by its owner; the base class would dispose of it here."""


class _Scheduler(BackgroundScheduler):
    def __init__(self, tick: Callable[[], float]) -> None:
        super().__init__(timezone=timezone.utc, daemon=True)
        self._tick = tick

    def _process_jobs(self) -> float | None:
        # APScheduler's own pass would read the wall clock and run every store; ours reads the injected
        # clock and runs only the stores this process leads. The main loop waits the seconds returned.
        if self.state != STATE_RUNNING:
            return None
        return self._tick()


class Timer:
    def __init__(self, engine: Engine, platforms: Callable[[], set[str]], clock: Clock = system_clock,
                 poll_seconds: float = 30.0) -> None:
        self.engine = engine
        self.platforms = platforms  # those this process can deliver to; it competes to lead only those
        self.clock = clock
        self.poll = poll_seconds
        self.jobs: Jobs | None = None
        self._scheduler = _Scheduler(self.tick)
        self._stores: dict[str, _JobStore] = {}
        self._locks: dict[str, Lock] = {}
        self._leading: set[str] = set()
        self._state = threading.RLock()  # stores, locks, leadership
        self._pass = threading.Lock()  # one run_pending at a time
        self._next_elect = 0.0
        self._closed = False

    def bind(self, jobs: Jobs) -> None:
        self.jobs = jobs

    # jobs ----------------------------------------------------------------------------------------------
    def put(self, spec: JobSpec) -> None:
        """Add or replace the job of a schedule."""
        if self._closed:  # shutting down: the next leader mirrors the schedule row into the store
            return
        self._store(spec.platform)
        self._scheduler.add_job(FIRE, trigger=spec.trigger, args=[spec.schedule_id], id=job_id(spec.schedule_id),
                                name=f"schedule #{spec.schedule_id}", jobstore=spec.platform,
                                next_run_time=spec.next_at, replace_existing=True, misfire_grace_time=None,
                                coalesce=True, max_instances=1)

    def remove(self, platform: str, schedule_id: int) -> None:
        if self._closed:
            return
        self._store(platform)
        try:
            self._scheduler.remove_job(job_id(schedule_id), jobstore=platform)
        except JobLookupError:
            pass

    def job(self, platform: str, schedule_id: int) -> Job | None:
        return self._store(platform).lookup_job(job_id(schedule_id))  # type: ignore[no-any-return]

    def job_ids(self, platform: str) -> set[int]:
        store = self._store(platform)
        with self.engine.connect() as conn:
            ids = conn.execute(select(store.jobs_t.c.id)).scalars().all()
        return {int(i.rsplit("-", 1)[1]) for i in ids if i.startswith("schedule-")}

    # leadership ----------------------------------------------------------------------------------------
    @property
    def leading(self) -> set[str]:
        with self._state:
            return set(self._leading)

    def elect(self) -> set[str]:
        """Take or keep the lead of every platform this process can deliver to; give up the others."""
        wanted = self.platforms()
        with self._state:
            if self._closed:
                return set()
            for platform in sorted(set(self._locks) | wanted):
                lock = self._lock(platform)
                if platform in wanted and lock.acquire():
                    if platform not in self._leading:
                        log.info("this process now runs the %s schedules", platform)
                        self._leading.add(platform)
                    self._reconcile(platform)
                    continue
                if platform in self._leading:
                    log.info("this process no longer runs the %s schedules", platform)
                    self._leading.discard(platform)
                if platform not in wanted:
                    lock.release()
            return set(self._leading)

    def _reconcile(self, platform: str) -> None:
        if self.jobs is None:
            return
        try:
            self.jobs.reconcile(platform)
        except Exception:
            log.exception("could not mirror the %s schedules into the job store", platform)

    # passes --------------------------------------------------------------------------------------------
    def run_pending(self, now: datetime | None = None) -> list[Any]:
        """Run the due jobs of the platforms this process leads, as of `now` (default: the clock)."""
        now = now or self.clock()
        outcomes: list[Any] = []
        with self._pass:
            for platform in sorted(self.leading):
                try:
                    due = self._store(platform).get_due_jobs(now)
                except Exception:
                    log.warning("cannot read the %s job store", platform, exc_info=True)
                    continue
                for job in due:
                    outcomes.append(self._run(platform, job, now))
        return [o for o in outcomes if o is not None]

    def resume_pending(self, now: datetime | None = None) -> list[Any]:
        """Renew this process's firing leases; take over the expired ones of the platforms it leads."""
        now = now or self.clock()
        if self.jobs is None:
            return []
        resumed: list[Any] = []
        with self._pass:
            self.jobs.renew(now)
            for platform in sorted(self.leading):
                try:
                    resumed += self.jobs.resume(platform, now)
                except Exception:
                    log.exception("could not take over the unfinished %s firings", platform)
        return resumed

    def _run(self, platform: str, job: Job, now: datetime) -> Any:
        outcome = None
        next_at: datetime | None = now + timedelta(seconds=self.poll)  # try again later if the firing fails
        try:
            assert self.jobs is not None, "Timer.bind was not called"
            with running(self.jobs.fire, now):
                outcome = job.func(*job.args, **job.kwargs)
            next_at = outcome.next_at
        except Exception:
            log.exception("job %s failed; trying again in %s s", job.id, self.poll)
        try:
            if next_at is None:
                self._scheduler.remove_job(job.id, jobstore=platform)
            else:
                self._scheduler.modify_job(job.id, jobstore=platform, next_run_time=next_at)
        except JobLookupError:
            pass  # cancelled meanwhile
        except Exception:
            log.warning("could not update job %s", job.id, exc_info=True)
        return outcome

    def tick(self) -> float:
        """One pass of the running scheduler; returns the seconds to wait before the next."""
        if self._closed:
            return self.poll
        try:
            if time.monotonic() >= self._next_elect:
                self.elect()
                self._next_elect = time.monotonic() + self.poll
            self.run_pending()
            self.resume_pending()
            return self._wait()
        except Exception:
            log.exception("scheduler pass failed")
            return self.poll

    def _wait(self) -> float:
        upcoming = [t for t in (self._store(p).get_next_run_time() for p in self.leading) if t is not None]
        if not upcoming:
            return self.poll
        return min(max((min(upcoming) - self.clock()).total_seconds(), 0.0), self.poll)

    # life ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run passes in APScheduler's thread: at every due job, and every poll_seconds to keep leadership and
        to see jobs other processes added."""
        self._started()
        self._scheduler.resume()

    def wakeup(self) -> None:
        self._scheduler.wakeup()

    def stop(self) -> None:
        with self._state:
            self._closed = True
            started = self._scheduler.state != STATE_STOPPED
        if started:
            self._scheduler.shutdown(wait=False)
        with self._state:
            for lock in self._locks.values():
                lock.release()
            self._leading.clear()

    def _started(self) -> None:
        with self._state:
            if self._closed:
                raise RuntimeError("the timer is stopped")
            if self._scheduler.state == STATE_STOPPED:
                self._scheduler.start(paused=True)

    def _store(self, platform: str) -> _JobStore:
        with self._state:
            self._started()
            if platform not in self._stores:
                store = _JobStore(engine=self.engine, tablename=f"apscheduler_jobs_{platform}")
                self._scheduler.add_jobstore(store, alias=platform)
                self._stores[platform] = store
            return self._stores[platform]

    def _lock(self, platform: str) -> Lock:
        if platform not in self._locks:
            self._locks[platform] = leader_lock(self.engine, f"scheduler-{platform}")
        return self._locks[platform]
