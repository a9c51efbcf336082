"""Reading WHEN: every supported form, time zones, the past, nonsense, and the WHEN/WHAT split of `/schedule add`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.schedule.parse import (
    ScheduleError,
    Unparseable,
    build_trigger,
    catch_up,
    parse_when,
    shortest_gap,
    split_when,
)

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("when", "trigger", "first"), [
    ("2026-11-27 10:00", "once", at(2026, 11, 27, 10, 0)),
    ("2026-11-27T10:00+01:00", "once", at(2026, 11, 27, 9, 0)),
    ("in 2 hours", "once", at(2026, 11, 25, 11, 0)),
    ("in 30 minutes", "once", at(2026, 11, 25, 9, 30)),
    ("in 1 hour and 15 minutes", "once", at(2026, 11, 25, 10, 15)),
    ("tomorrow 09:00", "once", at(2026, 11, 26, 9, 0)),
    ("tomorrow at 3pm", "once", at(2026, 11, 26, 15, 0)),
    ("friday 10:00", "once", at(2026, 11, 27, 10, 0)),
    ("on Friday at 10:00", "once", at(2026, 11, 27, 10, 0)),
    ("wednesday 08:00", "once", at(2026, 12, 2, 8, 0)),  # today's 08:00 is gone: next week
    ("at noon", "once", at(2026, 11, 25, 12, 0)),
    ("every day at 09:00", "cron:0 9 * * *", at(2026, 11, 26, 9, 0)),  # 09:00 today is now: next is tomorrow
    ("every monday 10:00", "cron:0 10 * * mon", at(2026, 11, 30, 10, 0)),
    ("every weekday at 8:30", "cron:30 8 * * mon,tue,wed,thu,fri", at(2026, 11, 26, 8, 30)),
    ("every 2 hours", "every:7200", at(2026, 11, 25, 11, 0)),
    ("cron: 0 10 * * FRI", "cron:0 10 * * fri", at(2026, 11, 27, 10, 0)),
    ("cron: 0 10 * * 5", "cron:0 10 * * fri", at(2026, 11, 27, 10, 0)),  # crontab counts from Sunday = 0
    ("cron: 0 10 * * 0", "cron:0 10 * * sun", at(2026, 11, 29, 10, 0)),
])
def test_forms(when: str, trigger: str, first: datetime) -> None:
    plan = parse_when(when, NOW, "UTC")
    assert (plan.trigger, plan.first, plan.zone) == (trigger, first, "UTC")


def test_time_zones() -> None:
    berlin = parse_when("friday 10:00 tz=Europe/Berlin", NOW, "UTC")
    assert (berlin.zone, berlin.first) == ("Europe/Berlin", at(2026, 11, 27, 9, 0))
    channel = parse_when("friday 10:00", NOW, "America/New_York")
    assert channel.first == at(2026, 11, 27, 15, 0)
    weekly = parse_when("every monday 10:00", NOW, "Europe/Berlin")
    trigger = build_trigger(weekly.trigger, weekly.zone, weekly.first)
    summer = trigger.get_next_fire_time(at(2027, 4, 1), at(2027, 4, 1))
    assert summer == at(2027, 4, 5, 8, 0)  # 10:00 in Berlin is 08:00 UTC in summer time
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        parse_when("friday 10:00 tz=Mars/Olympus", NOW, "UTC")


@pytest.mark.parametrize("when", ["2020-01-01 10:00", "today 08:00", "2026-11-25 08:59"])
def test_the_past_is_refused(when: str) -> None:
    with pytest.raises(ScheduleError, match="in the past") as caught:
        parse_when(when, NOW, "UTC")
    assert not isinstance(caught.value, Unparseable)


@pytest.mark.parametrize("when", ["someday", "friday", "every blue moon", "in a while", "cron: 1 2 3", ""])
def test_nonsense_is_unparseable(when: str) -> None:
    with pytest.raises(Unparseable, match="Cannot read the time"):
        parse_when(when, NOW, "UTC")


@pytest.mark.parametrize("when", ["25:00", "13pm", "cron: 0 10 * * blah", "cron: 99 10 * * *", "2026-13-01 10:00"])
def test_bad_values_say_what_is_wrong(when: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_when(when, NOW, "UTC")
    assert not isinstance(caught.value, Unparseable)


@pytest.mark.parametrize(("line", "spec", "what"), [
    ("friday 10:00 release notes", "Fri 2026-11-27 10:00", "release notes"),
    ("in 2 hours 30 people arrive", "Wed 2026-11-25 11:00", "30 people arrive"),
    ("cron: 0 10 * * FRI write the notes", "cron 0 10 * * fri", "write the notes"),
    ("every monday 10:00 standup tz=Europe/Berlin", "every monday at 10:00", "standup"),
    ('"tomorrow 09:00" call the bank', "Thu 2026-11-26 09:00", "call the bank"),
])
def test_split_when_what(line: str, spec: str, what: str) -> None:
    plan, text = split_when(line, NOW, "UTC")
    assert (plan.spec, text) == (spec, what)


def test_split_needs_both_parts() -> None:
    with pytest.raises(ScheduleError, match="Say what the schedule is about"):
        split_when("in 2 hours", NOW, "UTC")
    with pytest.raises(Unparseable, match="Cannot find a time"):
        split_when("soonish buy milk", NOW, "UTC")


def test_gaps_and_catching_up() -> None:
    every = parse_when("every 2 hours", NOW, "UTC")
    trigger = build_trigger(every.trigger, every.zone, every.first)
    assert shortest_gap(trigger, every.first) == timedelta(hours=2)
    burst = parse_when("cron: 0,5 10 * * *", NOW, "UTC")
    assert shortest_gap(build_trigger(burst.trigger, "UTC", burst.first), burst.first) == timedelta(minutes=5)
    # down from 11:00 to 16:30: the firings at 11, 13 and 15 are due; the latest is 15:00, two were passed over
    latest, passed, following = catch_up(trigger, every.first, at(2026, 11, 25, 16, 30))
    assert (latest, passed, following) == (at(2026, 11, 25, 15, 0), 2, at(2026, 11, 25, 17, 0))
    once = build_trigger("once", "UTC", at(2026, 11, 27, 10, 0))
    assert catch_up(once, at(2026, 11, 27, 10, 0), at(2026, 11, 27, 12, 0)) == (at(2026, 11, 27, 10, 0), 0, None)
