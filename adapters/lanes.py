"""Work run one job at a time per key (a channel), in the order submitted, on one shared pool of threads.

Chat adapters hand each event to its channel's lane and return at once, so the platform gets its ack in time
while the channel's messages are still handled in the order they arrived."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

Job = Callable[[], None]


class Lanes:
    def __init__(self, workers: int = 32, name: str = "lane") -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._waiting: dict[str, deque[Job]] = {}  # a key is present while its lane has work or is running
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def submit(self, key: str, job: Job) -> None:
        with self._lock:
            lane = self._waiting.get(key)
            if lane is not None:
                lane.append(job)
                return
            self._waiting[key] = deque([job])
        self._pool.submit(self._drain, key)

    def _drain(self, key: str) -> None:
        while True:
            with self._lock:
                lane = self._waiting[key]
                if not lane:
                    del self._waiting[key]
                    self._idle.notify_all()
                    return
                job = lane.popleft()
            try:
                job()
            except Exception:  # a job reports its own errors; this only keeps the lane alive
                log.exception("a job in lane %s failed", key)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no lane has work (for shutdown and benchmarks); False on time-out."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._waiting, timeout)

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
