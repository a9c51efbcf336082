"""One bounded pool of worker threads for the turns of every agent, with a FIFO lane per key (an agent).

Every way work reaches an agent (a Slack or Discord message, the console, a timed event, an edit such as pop)
goes through the lane of that agent, so it never races the agent's other work, while different agents run in
parallel on at most `workers` threads. Work submitted from inside a lane to the same lane runs at once (a Slack
message's job asking for the channel's turn), so nothing waits on itself.

Shutdown: `stop()` refuses new work; `abandon()` cancels what has not started and raises the abandon flag that a
running job checks with `check_abandoned()` (between model calls and before its final commit), so an abandoned
turn commits nothing. Workers are daemon threads: a job stuck in a model call never keeps the process alive.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_Job = tuple["Future[Any]", Callable[[], Any]]


class Stopped(RuntimeError):
    """Raised by submit once the pool stopped taking work (the process is shutting down)."""

    def __init__(self) -> None:
        super().__init__("membot is shutting down and takes no new work.")


class Abandoned(BaseException):
    """Raised inside a job the pool abandoned at shutdown: the job must not commit. A BaseException, so the
    `except Exception` of a tool or a retry loop does not swallow it."""


_here = threading.local()  # the lane key and pool of the job running on this thread


def check_abandoned() -> None:
    """Raise Abandoned when the job on this thread was abandoned (at shutdown). Call it between model calls
    and right before a turn's final commit; outside a pool job it does nothing."""
    pool: TurnPool | None = getattr(_here, "pool", None)
    if pool is not None and pool.abandoning:
        raise Abandoned("the turn was abandoned at shutdown")


def current_lane() -> Hashable | None:
    """The lane key of the job running on this thread, if any."""
    return getattr(_here, "key", None)


class TurnPool:
    def __init__(self, workers: int = 8, name: str = "turn") -> None:
        if workers < 1:
            raise ValueError("a turn pool needs at least one worker")
        self.workers = workers
        self.name = name
        self._lanes: dict[Hashable, deque[_Job]] = {}  # a key is present while its lane has work or is running
        self._ready: deque[Hashable] = deque()  # lanes with work and no worker, oldest first
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers wait here for a ready lane
        self._idle = threading.Condition(self._lock)  # wait_idle waits here for no lane
        self._threads: list[threading.Thread] = []
        self._free = 0  # workers waiting for work
        self._stopped = False
        self._abandon = threading.Event()

    # submitting ----------------------------------------------------------------------------------------
    def submit(self, key: Hashable, fn: Callable[[], T]) -> Future[T]:
        """Queue `fn` in lane `key`; jobs of one lane run one at a time in the order submitted."""
        future: Future[T] = Future()
        if getattr(_here, "pool", None) is self and _here.key == key:
            _run(future, fn)  # from inside the lane itself: queueing it would wait on ourselves
            return future
        with self._lock:
            if self._stopped:
                raise Stopped()
            lane = self._lanes.get(key)
            if lane is not None:
                lane.append((future, fn))
                return future
            self._lanes[key] = deque([(future, fn)])
            self._ready.append(key)
            self._wake()
        return future

    def run(self, key: Hashable, fn: Callable[[], T]) -> T:
        return self.submit(key, fn).result()

    def _wake(self) -> None:  # under the lock
        if self._free:
            self._work.notify()
        elif len(self._threads) < self.workers:
            thread = threading.Thread(target=self._worker, name=f"{self.name}-{len(self._threads) + 1}", daemon=True)
            self._threads.append(thread)
            thread.start()

    # working -------------------------------------------------------------------------------------------
    def _worker(self) -> None:
        _here.pool = self
        while True:
            with self._lock:
                while not self._ready:
                    if self._stopped and not self._lanes:
                        self._threads.remove(threading.current_thread())
                        return
                    self._free += 1
                    self._work.wait()
                    self._free -= 1
                key = self._ready.popleft()
                future, fn = self._lanes[key].popleft()
            _here.key = key
            try:
                if future.set_running_or_notify_cancel():
                    _run(future, fn)
            finally:
                _here.key = None
            with self._lock:
                if self._lanes[key]:
                    self._ready.append(key)  # one job per turn at the pool: other lanes' work goes first
                else:
                    del self._lanes[key]
                    if not self._lanes:
                        self._idle.notify_all()
                        self._work.notify_all()  # stopped workers may leave now

    # shutting down -------------------------------------------------------------------------------------
    @property
    def abandoning(self) -> bool:
        return self._abandon.is_set()

    @property
    def stopped(self) -> bool:
        """True once the pool takes no new work."""
        return self._stopped

    @property
    def busy(self) -> int:
        """Lanes with work queued or running."""
        with self._lock:
            return len(self._lanes)

    def stop(self) -> None:
        """Take no new work; what is queued still runs."""
        with self._lock:
            self._stopped = True
            self._work.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no lane has work; False on time-out."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._lanes, timeout)

    def abandon(self) -> int:
        """Cancel the jobs that have not started and flag the running ones (check_abandoned raises in them).
        Returns how many jobs were running or queued."""
        self._abandon.set()
        with self._lock:
            self._stopped = True
            count = 0
            for lane in self._lanes.values():
                count += len(lane)
                for future, _fn in lane:
                    future.cancel()
            running = len(self._lanes) - len(self._ready)
            self._work.notify_all()
        return count + running

    def close(self, grace: float | None = None) -> bool:
        """Stop, let the work taken run for up to `grace` seconds (None: until done), then abandon the rest.
        True when everything finished."""
        self.stop()
        if self.wait_idle(grace):
            return True
        left = self.abandon()
        log.warning("abandoned %d turn(s) still running or queued after %.0f s", left, grace or 0)
        return False


def _run(future: Future[T], fn: Callable[[], T]) -> None:
    try:
        result = fn()
    except BaseException as exc:  # the caller gets it from the future; Abandoned included
        future.set_exception(exc)
    else:
        future.set_result(result)
