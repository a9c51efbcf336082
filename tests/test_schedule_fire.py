"""Schedules end to end on SQLite: people add them, they fire on a hand-moved clock through the real APScheduler SQL
job store, the agent's turn (real openai client, FakeOpenAI) decides what to post, and the post is delivered."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.schedule.delivery import Target
from agent.schedule.model import ACTIVE, CANCELLED, DONE, MISSED
from agent.schedule.parse import ScheduleError, Unparseable
from tests.fakes.openai_server import FakeOpenAI, tool_call
from tests.fakes.timed import ManualClock, World


def event_inputs(fake: FakeOpenAI) -> list[dict[str, object]]:
    """The timed-event inputs the model was shown, newest last."""
    seen: list[dict[str, object]] = []
    for request in fake.chat_requests:
        for message in request["messages"]:
            if message["role"] == "user" and '"timed_event"' in message["content"]:
                body = json.loads(message["content"])
                if body not in seen:
                    seen.append(body)
    return seen


def test_one_off_fires_once_and_posts(world: World, fake: FakeOpenAI, clock: ManualClock) -> None:
    answer = world.command("add in 2 hours check the oven")
    assert answer.startswith("Scheduled #1 ") and "check the oven (by Ann)" in answer and "in 2 hours" in answer
    assert world.container.timer.job("test", 1) is not None  # a real APScheduler job in the SQL job store
    assert world.fire() == []
    fake.script(tool_call("send_message", message="Time to check the oven!"))
    clock.advance(hours=2)
    assert world.fire() == [("fired", ["Time to check the oven!"])]
    assert world.outbox.items == [(Target("test:W1", "C1"), "Time to check the oven!")]
    event = event_inputs(fake)[-1]
    assert "Schedule #1 is due" in str(event["message"]) and "check the oven" in str(event["message"])
    clock.advance(minutes=1)
    assert world.fire() == []
    row = world.row(1)
    assert (row.status, row.fire_count, row.next_fire_at) == (DONE, 1, None)
    assert world.container.timer.job("test", 1) is None


def test_recurring_fires_every_time_in_its_zone(world: World, fake: FakeOpenAI, clock: ManualClock) -> None:
    world.command("add every monday 10:00 standup notes tz=Europe/Berlin")
    first = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # 10:00 in Berlin
    assert world.row(1).timezone == "Europe/Berlin"
    assert world.container.timer.job("test", 1).next_run_time == first
    clock.set(first)
    fake.script(tool_call("send_message", message="Standup notes, please."))
    assert world.fire() == [("fired", ["Standup notes, please."])]
    job = world.container.timer.job("test", 1)
    assert job.next_run_time == first + timedelta(days=7)
    clock.advance(days=7)
    fake.script(tool_call("send_message", message="Standup notes again."))
    assert world.fire() == [("fired", ["Standup notes again."])]
    row = world.row(1)
    assert (row.status, row.fire_count) == (ACTIVE, 2)
    assert "Next firing: Mon 2026-12-07 10:00" in str(event_inputs(fake)[-1]["message"])


def test_interval_schedule(world: World, clock: ManualClock) -> None:
    world.command("add every 2 hours stretch")
    for _ in range(3):
        clock.advance(hours=2)
        assert [outcome for outcome, _ in world.fire()] == ["fired"]
    assert world.row(1).fire_count == 3
    assert len(world.outbox.items) == 3  # FakeOpenAI's default answer echoes the event


def test_schedules_survive_a_restart(home: Path, fake: FakeOpenAI, clock: ManualClock) -> None:
    with World(home, fake, clock) as first:
        first.command("add friday 10:00 release notes")
        first.command("add every day at 09:00 coffee")
        first.command("tz Europe/Berlin")
    clock.set(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    with World(home, fake, clock) as second:
        listing = second.command("list")
        assert "time zone Europe/Berlin" in listing and "#1 Fri 2026-11-27 10:00 (UTC): release notes" in listing
        assert "#2 every day at 09:00 (UTC), next Mon 2026-11-23 09:00" in listing  # overdue: the bot was down
        assert second.container.timer.job("test", 1) is not None
        fake.script(tool_call("send_message", message="Release notes today!"))
        outcomes = dict((o, texts) for o, texts in second.fire())
        assert outcomes["fired"] == ["Release notes today!"]
        # the daily 09:00 was an hour late: more than the grace, so it was reported instead of run
        assert any(text.startswith("⏰ Missed schedule #2") for text in outcomes["missed"])


def test_missed_within_grace_runs_once(home: Path, fake: FakeOpenAI, clock: ManualClock) -> None:
    with World(home, fake, clock) as before:
        before.command("add in 1 hour deploy window opens")
    clock.advance(hours=1, minutes=10)  # down while it was due; grace is 15 minutes
    with World(home, fake, clock) as after:
        fake.script(tool_call("send_message", message="The deploy window is open (a bit late)."))
        assert after.fire() == [("fired", ["The deploy window is open (a bit late)."])]
        assert "runs 10 minutes late" in str(event_inputs(fake)[-1]["message"])
        assert after.fire() == []
    with World(home, fake, clock) as again:
        assert again.fire() == []
        assert (again.row(1).status, again.row(1).fire_count) == (DONE, 1)


def test_missed_beyond_grace_is_reported_not_run(home: Path, fake: FakeOpenAI, clock: ManualClock) -> None:
    with World(home, fake, clock) as before:
        before.command("add in 1 hour deploy window opens")
        before.command("add every day at 09:00 daily report")
    clock.set(datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc))  # three days later
    calls = len(fake.chat_requests)
    with World(home, fake, clock) as after:
        results = after.fire()
        assert [outcome for outcome, _ in results] == ["missed", "missed"]
        texts = after.outbox.texts
        assert any("#1" in t and "deploy window opens" in t and "while I was offline" in t for t in texts)
        assert any("#2" in t and "Next firing: Fri 2026-11-27 09:00" in t for t in texts)
        assert len(fake.chat_requests) == calls  # nothing was run
        assert (after.row(1).status, after.row(1).fire_count) == (MISSED, 0)
        daily = after.row(2)
        assert (daily.status, daily.missed_count, daily.fire_count) == (ACTIVE, 4, 0)  # Monday to Thursday
        assert after.fire() == []
        clock.set(datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc))
        assert [outcome for outcome, _ in after.fire()] == ["fired"]  # back on schedule


def test_a_firing_is_claimed_only_once(world: World, clock: ManualClock) -> None:
    world.command("add in 2 hours once only")
    world.command("add every 2 hours twice only")
    assert world.due() == []  # this process leads the platform now
    clock.advance(hours=2)
    now = clock()
    # Fired outside the timer (as if the process died before it updated the job store) ...
    first = [world.schedules.fire(i, now) for i in (1, 2)]
    assert [f.outcome for f in first] == ["fired", "fired"]
    # ... and again: the rows already record these firings
    assert [world.schedules.fire(i, now).outcome for i in (1, 2)] == ["retired", "skipped"]
    # the stale jobs are still due in the job store: the pass fires nothing and puts them right
    assert [f.outcome for f in world.container.timer.run_pending()] == ["retired", "skipped"]
    assert world.container.timer.job("test", 1) is None
    assert world.container.timer.job("test", 2).next_run_time == now + timedelta(hours=2)
    for firing in first:
        firing.delivered.result(timeout=60)
    assert len(world.outbox.items) == 2
    assert (world.row(1).fire_count, world.row(2).fire_count) == (1, 1)


def test_cancel(world: World, clock: ManualClock) -> None:
    world.command("add every day at 09:00 coffee")
    world.command("add in 3 hours tea", channel=world.channel("C2"))
    assert world.command("cancel #1") == "Cancelled #1: coffee"
    assert world.row(1).status == CANCELLED
    assert world.container.timer.job("test", 1) is None
    with pytest.raises(ScheduleError, match="already ended"):
        world.command("cancel 1")
    with pytest.raises(ScheduleError, match="no schedule #2 in this channel"):
        world.command("cancel 2")  # another channel's
    with pytest.raises(ScheduleError, match="no schedule #99"):
        world.command("cancel 99")
    with pytest.raises(ScheduleError, match="Usage"):
        world.command("cancel coffee")
    clock.advance(hours=3)  # past the cancelled 09:00 coffee, at C2's tea
    results = world.fire()
    assert [outcome for outcome, _ in results] == ["fired"]
    assert world.outbox.items[0][0] == Target("test:W1", "C2")
    assert "No schedules in this channel" in world.command("list")


def test_caps(home: Path, fake: FakeOpenAI, clock: ManualClock) -> None:
    with World(home, fake, clock, MEMBOT_SCHEDULE_MAX_PER_CHANNEL=2) as world:
        world.command("add in 1 hour a")
        world.command("add in 2 hours b")
        with pytest.raises(ScheduleError, match="already has 2 active schedules"):
            world.command("add in 3 hours c")
        world.command("add in 3 hours c", channel=world.channel("C2"))  # the cap is per channel
        world.command("cancel 1")
        assert world.command("add in 3 hours c").startswith("Scheduled #4")
        for too_often in ("every 5 minutes", "cron: */5 * * * *", "cron: 0,3 9 * * *"):
            with pytest.raises(ScheduleError, match="at least 10 minutes apart"):
                world.command(f"add {too_often} spam", channel=world.channel("C3"))
        assert world.command("add every 10 minutes ok", channel=world.channel("C3")).startswith("Scheduled")


def test_bad_input(world: World) -> None:
    with pytest.raises(ScheduleError, match="in the past"):
        world.command("add 2020-01-01 10:00 too late")
    with pytest.raises(Unparseable, match="Cannot find a time"):
        world.command("add someday maybe")
    with pytest.raises(ScheduleError, match="Say what the schedule is about"):
        world.command("add in 2 hours")
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        world.command("add friday 10:00 x tz=Nowhere/Land")
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        world.command("tz Nowhere/Land")
    with pytest.raises(ScheduleError, match="Unknown `/schedule frobnicate`"):
        world.command("frobnicate")
    with pytest.raises(ScheduleError, match="under 2000"):
        world.command("add in 2 hours " + "x" * 2001)
    assert "No schedules" in world.command("")
    assert world.container.book.listing(world.container.book.session(), 1) == []


def test_failed_turn_still_delivers_the_reminder(world: World, fake: FakeOpenAI, clock: ManualClock) -> None:
    from tests.fakes.openai_server import error

    world.command("add in 1 hour water the plants")
    clock.advance(hours=1)
    fake.script(error(500, "down"))
    assert world.fire() == [("fired", ["⏰ Reminder #1: water the plants"])]
