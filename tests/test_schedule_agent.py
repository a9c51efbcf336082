"""The agent's side of timed events (the scripted model calls the schedule tools; a firing becomes a turn whose
reply is delivered) and the console's (`/schedule`, the "local" delivery, the scheduler thread of `membot run`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from adapters.console import Console
from agent.loop import Incoming
from agent.memory.core import Speaker
from agent.schedule.delivery import Target
from agent.schedule.model import CANCELLED
from bot.container import Container
from tests.conftest import make_settings, run_cli
from tests.fakes.openai_server import FakeOpenAI, tool_call
from tests.fakes.timed import ManualClock, World

ANN = Speaker("U1", "Ann")





def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]


def test_agent_schedules_a_reminder_and_answers_it(world: World, fake: FakeOpenAI, clock: ManualClock) -> None:
    agents = world.container.agents
    agent = agents.open("test:W1", "channel:C1", persona="channel_helper")
    fake.script(tool_call("schedule_message", when="in 2 hours", text="check the oven", request_heartbeat=True),
                tool_call("send_message", message="I will remind you in 2 hours."))
    result = agents.send(int(agent.id or 0), Incoming("remind us in 2 hours to check the oven", ANN, thread="T9"))
    assert result.replies == ["I will remind you in 2 hours."]
    [scheduled] = tool_results(fake.chat_requests[1])
    assert scheduled["status"] == "OK" and scheduled["message"].startswith("Scheduled #1 Mon 2026-11-23 10:00 (UTC)")
    row = world.row(1)
    assert (row.channel, row.thread, row.created_by) == ("C1", "T9", "Ann via the agent")
    assert world.container.timer.job("test", 1) is not None  # added once the turn committed
    assert world.due() == []

    clock.advance(hours=2)
    fake.script(tool_call("send_message", message="Time to check the oven!"))
    assert world.fire() == [("fired", ["Time to check the oven!"])]
    assert world.outbox.items == [(Target("test:W1", "C1", thread="T9"), "Time to check the oven!")]
    event = json.loads(fake.chat_requests[-1]["messages"][-1]["content"])
    assert event["type"] == "timed_event"
    assert "Schedule #1 is due" in event["message"] and "Its text: check the oven" in event["message"]


def test_agent_lists_cancels_and_recovers_from_mistakes(world: World, fake: FakeOpenAI) -> None:
    agents = world.container.agents
    agent = agents.open("test:W1", "channel:C1", persona="channel_helper")
    fake.script(
        tool_call("schedule_message", when="whenever", text="x", request_heartbeat=True),
        tool_call("schedule_message", when="every day at 09:00", text="daily report", timezone="Europe/Berlin",
                  request_heartbeat=True),
        tool_call("schedule_message", when="every 2 minutes", text="spam", request_heartbeat=True),
        tool_call("list_schedules", request_heartbeat=True),
        tool_call("cancel_schedule", schedule_id=1, request_heartbeat=True),
        tool_call("cancel_schedule", schedule_id=7, request_heartbeat=True),
        tool_call("send_message", message="Done."),
    )
    agents.send(int(agent.id or 0), Incoming("set up the daily report, then drop it", ANN))
    results = tool_results(fake.chat_requests[-1])
    assert [r["status"] for r in results] == ["Failed", "OK", "Failed", "OK", "OK", "Failed"]
    assert "Scheduling failed: Cannot read the time 'whenever'" in results[0]["message"]
    assert results[1]["message"].startswith("Scheduled #1 every day at 09:00 (Europe/Berlin), next Tue 2026-11-24")
    assert "at least 10 minutes apart" in results[2]["message"]
    assert "#1 every day at 09:00 (Europe/Berlin)" in results[3]["message"] and "daily report" in results[3]["message"]
    assert results[4]["message"] == "Cancelled #1: daily report"
    assert "no schedule #7" in results[5]["message"]
    assert world.row(1).status == CANCELLED
    assert world.container.timer.job("test", 1) is None


def test_a_failed_turn_adds_no_schedule(world: World, fake: FakeOpenAI) -> None:
    from tests.fakes.openai_server import error

    agents = world.container.agents
    agent = agents.open("test:W1", "channel:C1", persona="channel_helper")
    fake.script(tool_call("schedule_message", when="in 2 hours", text="lost", request_heartbeat=True), error(500))
    result = agents.send(int(agent.id or 0), Incoming("remind me", ANN))
    assert result.failed
    assert world.schedules.get(1) is None  # rolled back with the turn
    assert world.container.timer.job_ids("test") == set()


def test_console_schedule_and_its_delivery_in_the_running_scheduler(home: Path, fake: FakeOpenAI,
                                                                    clock: ManualClock) -> None:
    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test", MEMBOT_LLM_MODEL="m")
    lines: list[str] = []
    with Container(settings, clock=clock) as c:
        agent = c.agents.open("local", "console")
        console = Console(c.chat, agent.name, "local", False, out=lines.append, schedules=c.book)
        c.deliveries.register("local", console.deliver)
        c.start_scheduler()  # the timer's thread runs the passes from here on
        console.run(["/schedule add in 2 hours tea time", "/schedule list", "/schedule add 2020-01-01 10:00 x"])
        assert lines[0].startswith("Scheduled #1 Mon 2026-11-23 10:00 (UTC): tea time")
        assert "#1 Mon 2026-11-23 10:00 (UTC): tea time" in lines[1] and "(in 2 hours)" in lines[1]
        assert lines[2].startswith("⚠️  Wed 2020-01-01 10:00 (UTC) is in the past")
        fake.script(tool_call("send_message", message="Tea time!"))
        clock.advance(hours=2)
        c.timer.wakeup()
        deadline = time.monotonic() + 60
        while "🤖 ⏰ Tea time!" not in lines and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "🤖 ⏰ Tea time!" in lines
        assert c.timer.leading == {"local"}
    row = c.schedules.get(1)
    assert row is not None and row.fire_count == 1


def test_membot_run_console_schedule_command(home: Path, fake: FakeOpenAI) -> None:
    env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test", "MEMBOT_LLM_MODEL": "fake-model",
           "MEMBOT_TIMEZONE": "Europe/Berlin"}
    script = "/help\n/schedule add in 2 hours tea\n/schedule list\n/schedule cancel 1\n/schedule list\n" \
             "/schedule add soonish x\n/schedule tz\n"
    done = run_cli(home, "run", "--agent", "console", "--first", env=env, input=script, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "/schedule ...      timed messages" in out
    assert "Scheduled #1 " in out and "(Europe/Berlin): tea (by " in out
    assert "Cancelled #1: tea" in out and "No schedules in this channel (time zone Europe/Berlin)" in out
    assert "⚠️  Cannot find a time at the start of 'soonish x'" in out
    assert "This channel's time zone is Europe/Berlin" in out
