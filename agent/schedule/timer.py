"""The timer: which process runs each platform's schedules (one leader per platform), and its passes.

Each pass (`tick`) keeps leadership (one lock per platform this process can deliver to), then runs the due jobs
of the platforms it leads with `run_pending(now)`. Time comes from an injectable clock, so tests drive passes by
hand; a daemon thread runs passes at every due job and every poll_seconds. The jobs themselves live on the job
board (agent/schedule/board.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from sqlalchemy.engine import Engine

from agent.schedule.board import JobBoard
from agent.schedule.jobs import running
from agent.schedule.leader import Lock, leader_lock

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


class Outcome(Protocol):
    @property
    def next_at(self) -> datetime | None:
        """When the job should run next (None: remove it), as the schedule row says after the firing."""


Fire = Callable[[int, datetime], Outcome]  # run one firing of a schedule (the schedule service)
Reconcile = Callable[[str], None]  # mirror a platform's active schedules onto the job board
Renew = Callable[[datetime], None]  # keep the leases of the firings this process works on
Resume = Callable[[str, datetime], list[Any]]  # take over a platform's firings whose process died


class Timer:
    def __init__(self, engine: Engine, board: JobBoard, platforms: Callable[[], set[str]], fire: Fire,
                 reconcile: Reconcile, clock: Clock = system_clock, poll_seconds: float = 30.0,
                 renew: Renew | None = None, resume: Resume | None = None) -> None:
        self.engine = engine
        self.board = board
        self.platforms = platforms  # those this process can deliver to; it competes to lead only those
        self.fire = fire
        self.reconcile = reconcile
        self.renew = renew
        self.resume = resume
        self.clock = clock
        self.poll = poll_seconds
        self._locks: dict[str, Lock] = {}
        self._leading: set[str] = set()
        self._state = threading.RLock()  # locks, leadership
        self._pass = threading.Lock()  # one run_pending at a time
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_elect = 0.0
        self._closed = False

    # jobs (on the board) -------------------------------------------------------------------------------
    def job(self, platform: str, schedule_id: int) -> Job | None:
        return self.board.job(platform, schedule_id)

    def job_ids(self, platform: str) -> set[int]:
        return self.board.job_ids(platform)

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
        try:
            self.reconcile(platform)
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
                    due = self.board.due(platform, now)
                except Exception:
                    log.warning("cannot read the %s job store", platform, exc_info=True)
                    continue
                for job in due:
                    outcomes.append(self._run(platform, job, now))
        return [o for o in outcomes if o is not None]

    def resume_pending(self, now: datetime | None = None) -> list[Any]:
        """Renew this process's firing leases; take over the expired ones of the platforms it leads."""
        now = now or self.clock()
        resumed: list[Any] = []
        with self._pass:
            if self.renew is not None:
                self.renew(now)
            resume = self.resume
            for platform in sorted(self.leading):
                if resume is None:
                    break
                try:
                    resumed += resume(platform, now)
                except Exception:
                    log.exception("could not take over the unfinished %s firings", platform)
        return resumed

    def _run(self, platform: str, job: Job, now: datetime) -> Any:
        outcome = None
        next_at: datetime | None = now + timedelta(seconds=self.poll)  # try again later if the firing fails
        try:
            with running(self.fire, now):
                outcome = job.func(*job.args, **job.kwargs)
            next_at = outcome.next_at
        except Exception:
            if self._closed:  # shutdown stopped the turn pool or the stores under this pass: no bug, no traceback
                log.info("job %s was interrupted by shutdown; it runs again at the next start", job.id)
                return None
            log.exception("job %s failed; trying again in %s s", job.id, self.poll)
        try:
            if next_at is None:
                self.board.drop(platform, job.id)
            else:
                self.board.move(platform, job.id, next_at)
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
            if self._closed:
                log.info("the scheduler pass in progress was interrupted by shutdown")
            else:
                log.exception("scheduler pass failed")
            return self.poll

    def _wait(self) -> float:
        upcoming = [t for t in (self.board.next_run(p) for p in self.leading) if t is not None]
        if not upcoming:
            return self.poll
        return min(max((min(upcoming) - self.clock()).total_seconds(), 0.0), self.poll)

    # life ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run passes in a daemon thread: at every due job, and every poll_seconds to keep leadership and to see
        jobs other processes added."""
        with self._state:
            if self._closed:  # shutdown began first (an adapter starting as the process stops): nothing to run
                log.debug("the timer is stopped; not starting it")
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="membot-timer", daemon=True)
                self._thread.start()

    def wakeup(self) -> None:
        """Run a pass now (the clock moved, or a job was added)."""
        self._wake.set()

    def stop(self) -> None:
        """Run no more passes: the one in progress ends (its firing only queues a turn, which the turn pool's
        shutdown then finishes or abandons), then the leader locks are released. Safe from any thread, at any
        moment, any number of times; `start` after it does nothing."""
        with self._state:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.poll)  # a firing in progress only queues its turn: this is short
        with self._state:
            for lock in self._locks.values():
                lock.release()
            self._leading.clear()

    def _loop(self) -> None:
        while not self._closed:
            wait = self.tick()
            self._wake.wait(wait)
            self._wake.clear()

    def _lock(self, platform: str) -> Lock:
        if platform not in self._locks:
            self._locks[platform] = leader_lock(self.engine, f"scheduler-{platform}")
        return self._locks[platform]
