"""The function every APScheduler job runs, named by its path: a stored job holds a schedule id, never an object.

The timer calls a due job inside `running(handler, now)`, so `fire` reaches the service of that timer (two
timers in one process stay apart) and the pass's notion of now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FIRE = "agent.schedule.jobs:fire"


@dataclass(frozen=True)
class _Pass:
    handler: Callable[[int, datetime], Any]
    now: datetime


_current: ContextVar[_Pass] = ContextVar("membot_schedule_pass")


def fire(schedule_id: int) -> Any:
    """Fire schedule `schedule_id` for the timer pass that is running it."""
    try:
        current = _current.get()
    except LookupError:
        raise RuntimeError("agent.schedule.jobs.fire runs only inside Timer.run_pending") from None
    return current.handler(schedule_id, current.now)


@contextmanager
def running(handler: Callable[[int, datetime], Any], now: datetime) -> Iterator[None]:
    token = _current.set(_Pass(handler, now))
    try:
        yield
    finally:
        _current.reset(token)
