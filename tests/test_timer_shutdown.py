"""Stopping the timer at any moment is quiet: `start` racing `stop` never raises ("the timer is stopped" was seen
at the exit of `membot run`), and a firing whose turn shutdown cuts short logs no traceback and is taken over after
the next start, so its reminder is late, never lost."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.schedule.timer import Timer
from tests.fakes.openai_server import FakeOpenAI, tool_call
from tests.fakes.timed import ManualClock, World


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def _call(fn: Any, go: threading.Barrier, errors: list[BaseException]) -> None:
    go.wait()
    try:
        fn()
    except BaseException as exc:  # the test reports whatever escaped
        errors.append(exc)


def test_start_and_stop_racing_never_raise(world: World, caplog: pytest.LogCaptureFixture) -> None:
    c = world.container
    for _ in range(20):
        timer = Timer(c.engine, c.board, lambda: {"test"}, c.schedules.fire, c.book.reconcile, world.clock,
                      poll_seconds=0.05)
        errors: list[BaseException] = []
        go = threading.Barrier(2)
        threads = [threading.Thread(target=_call, args=(fn, go, errors)) for fn in (timer.start, timer.stop)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        timer.stop()
        timer.start()  # after stop: nothing happens
        assert errors == []
        assert timer._thread is None or not timer._thread.is_alive()
    assert tracebacks(caplog) == []


def test_shutdown_during_a_firing_is_quiet_and_the_firing_runs_after_restart(
        home: Path, fake: FakeOpenAI, clock: ManualClock, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    died: list[str] = []  # a thread ended by an exception prints its traceback
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(f"{args.thread}: {args.exc_value!r}"))
    asked, release = threading.Event(), threading.Event()

    def slow(request: dict[str, Any]) -> Any:
        asked.set()
        release.wait(30)
        return tool_call("send_message", message="Tea time!")

    with World(home, fake, clock, MEMBOT_SHUTDOWN_GRACE=0.5) as first:
        first.command("add in 1 hour tea")
        clock.advance(hours=1, minutes=1)
        fake.default = slow
        first.container.start_scheduler()  # its thread's first pass fires the schedule: the turn asks the model
        assert asked.wait(30)
        first.close()  # the turn is abandoned after the grace; the model has not answered yet
        first.container.timer.start()  # an adapter starting as the process stops: nothing happens
        release.set()
        assert first.container.agents.pool.wait_idle(30)
    assert tracebacks(caplog) == [] and died == [], (tracebacks(caplog), died)
    assert first.outbox.texts == []

    fake.default = lambda request: tool_call("send_message", message="Tea time!")
    clock.advance(minutes=5)  # past the abandoned firing's lease
    with World(home, fake, clock) as second:
        second.container.timer.elect()
        [resumed] = second.container.timer.resume_pending()
        assert resumed.delivered.result(timeout=60) == ["Tea time!"]
