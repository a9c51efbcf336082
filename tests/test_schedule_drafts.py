"""The schedule tools hold no write lock while the model thinks: a schedule the agent adds is a draft until its
turn lands (another channel's turn lands meanwhile on SQLite), a failed turn leaves no schedule, and a draft left
by a killed turn never fires and is cleared by the book's reconcile."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from agent.loop import Incoming
from agent.memory.core import Speaker
from agent.schedule.model import ACTIVE, DRAFT, Schedule
from tests.fakes.openai_server import FakeOpenAI, error, tool_call
from tests.fakes.timed import World

ANN, BOB = Speaker("U1", "Ann"), Speaker("U2", "Bob")


def rows(world: World) -> list[Schedule]:
    with Session(world.container.engine) as s:
        return list(s.exec(select(Schedule).order_by(col(Schedule.id))).all())


def test_a_turn_that_scheduled_waits_on_the_model_without_blocking_another_channel(world: World,
                                                                                   fake: FakeOpenAI) -> None:
    agents = world.container.agents
    asked, release = threading.Event(), threading.Event()

    def answer(request: dict[str, Any]) -> Any:
        text = json.dumps(request["messages"])
        if "remind us" not in text:
            return tool_call("send_message", message="Quick answer.")
        if "Scheduled #" not in text:
            return tool_call("schedule_message", when="in 2 hours", text="stand-up", request_heartbeat=True)
        asked.set()  # the schedule is added; now the model takes its time
        release.wait(60)
        return tool_call("send_message", message="I will remind you.")

    fake.default = answer
    slow = agents.open("test:W1", "channel:C1", persona="channel_helper")
    quick = agents.open("test:W1", "channel:C2", persona="channel_helper")
    long_turn = agents.submit(int(slow.id or 0), Incoming("remind us of the stand-up", ANN))
    try:
        assert asked.wait(30)
        assert [(r.status, r.text) for r in rows(world)] == [(DRAFT, "stand-up")]
        # On SQLite this turn lands only if the slow turn holds no write lock.
        result = agents.submit(int(quick.id or 0), Incoming("a quick question", BOB)).result(timeout=15)
        assert result.replies == ["Quick answer."] and not long_turn.done()
        assert world.container.timer.job_ids("test") == set()  # a draft is not on the board
    finally:
        release.set()
    assert long_turn.result(timeout=60).replies == ["I will remind you."]
    [row] = rows(world)
    assert row.status == ACTIVE and row.text == "stand-up"
    assert world.container.timer.job_ids("test") == {row.id}


def test_a_failed_turn_leaves_no_schedule_and_no_draft(world: World, fake: FakeOpenAI) -> None:
    agents = world.container.agents
    agent = agents.open("test:W1", "channel:C1", persona="channel_helper")
    world.command("add every monday 9:00 weekly review")  # a person's schedule, active
    fake.script(tool_call("schedule_message", when="in 2 hours", text="lost", request_heartbeat=True),
                tool_call("cancel_schedule", schedule_id=1, request_heartbeat=True), error(500))
    result = agents.send(int(agent.id or 0), Incoming("remind me, and drop the review", ANN))
    assert result.failed
    assert [(r.id, r.status, r.text) for r in rows(world)] == [(1, ACTIVE, "weekly review")]  # cancel not applied
    assert world.container.timer.job_ids("test") == {1}


def test_a_killed_turns_draft_never_fires_and_is_cleared(world: World, fake: FakeOpenAI) -> None:
    agents = world.container.agents
    agent = agents.open("test:W1", "channel:C1", persona="channel_helper")
    book = world.container.book
    plan = book.read_when(Session(world.container.engine), int(agent.id or 0), "in 1 hour")
    left = book.draft(agent, plan, "left by a killed turn", "the agent")  # as a turn killed before landing
    assert "left by a killed turn" not in world.command("list")
    world.clock.advance(hours=2)
    assert world.fire() == []
    book.reconcile("test")
    assert [r.id for r in rows(world)] == [left.id]  # a fresh draft may belong to a turn still running
    with Session(world.container.engine) as s:
        s.execute(update(Schedule).values(created_at=Schedule.created_at - timedelta(days=2)))  # type: ignore
        s.commit()
    book.reconcile("test")
    assert rows(world) == []
