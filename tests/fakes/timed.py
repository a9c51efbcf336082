"""Test doubles for timed events: a clock moved by hand, a delivery (outbox) for a fake platform, and a World
that wires them into a real Container."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from adapters.listing import schedule_markdown
from agent.chat import Channel
from agent.schedule.delivery import Target
from agent.schedule.model import Schedule
from agent.schedule.service import Firing, ScheduleService
from tests.fakes.openai_server import FakeOpenAI


class ManualClock:
    """The schedules' notion of now, moved only by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return moment


class Outbox:
    """A delivery function: records every (target, text) it is asked to post."""

    def __init__(self) -> None:
        self.items: list[tuple[Target, str]] = []
        self._cond = threading.Condition()

    def __call__(self, target: Target, text: str) -> None:
        with self._cond:
            self.items.append((target, text))
            self._cond.notify_all()

    @property
    def texts(self) -> list[str]:
        with self._cond:
            return [text for _, text in self.items]

    def wait_for(self, count: int, timeout: float = 60.0) -> list[tuple[Target, str]]:
        """Block until `count` posts arrived (raises TimeoutError); a guard against hanging, not a timing check."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.items) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.items)} of {count} posts arrived")
                self._cond.wait(left)
            return list(self.items)


class World:
    """A membot process for schedule tests: the real Container on a real database, FakeOpenAI as the model, a
    hand-moved clock, and an Outbox registered as the delivery of a fake platform."""

    def __init__(self, home: Path, fake: FakeOpenAI, clock: ManualClock, platform: str = "test",
                 **settings: object) -> None:
        from bot.container import Container
        from tests.conftest import make_settings

        self.clock = clock
        self.platform = platform
        self.outbox = Outbox()
        env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test", "MEMBOT_LLM_MODEL": "fake-model",
               "MEMBOT_LLM_RETRIES": 0, **settings}
        self.container = Container(make_settings(home, **env), clock=clock)
        self.container.deliveries.register(platform, self.outbox)

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    @property
    def schedules(self) -> ScheduleService:
        return self.container.schedules

    def channel(self, ident: str = "C1") -> Channel:
        return Channel(f"{self.platform}:W1", ident)

    def command(self, text: str, channel: Channel | None = None, author: str = "Ann", thread: str = "") -> str:
        place = channel or self.channel()
        return schedule_markdown(self.container.chat.schedule(place, text, author, thread))

    def due(self) -> list[Firing]:
        """One scheduler pass at the clock's time: keep leadership, run what is due."""
        self.container.timer.elect()
        return self.container.timer.run_pending()

    def fire(self) -> list[tuple[str, list[str]]]:
        """A pass, waiting for each firing's posts: [(outcome, texts posted)]."""
        return [(f.outcome, f.delivered.result(timeout=60)) for f in self.due()]

    def row(self, schedule_id: int) -> Schedule:
        row = self.schedules.get(schedule_id)
        assert row is not None
        return row
