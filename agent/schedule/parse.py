"""Reading WHEN: one-off times, repeating ones and cron lines, in a channel's time zone or a given one.

A WHEN becomes a Plan: a canonical trigger (`once`, `cron:<5 fields>`, `every:<seconds>`), the first firing in
UTC, the zone, and the wording people see. `build_trigger` turns a canonical trigger back into an APScheduler
trigger, so the Schedule row alone can always rebuild its job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from agent.errors import UserError

EXAMPLES = ('"2026-11-27 10:00", "in 2 hours", "in 30 minutes", "tomorrow 09:00", "friday 10:00", '
            '"every day at 09:00", "every monday 10:00", "every 2 hours", "cron: 0 10 * * FRI"; '
            'add "tz=Europe/Berlin" for another time zone')


class ScheduleError(UserError):
    """A schedule request that cannot be honoured; the text says why, for people and the model alike."""


class Unparseable(ScheduleError):
    """The text is not a time membot understands."""


@dataclass(frozen=True)
class Plan:
    trigger: str  # once | cron:<fields> | every:<seconds>
    first: datetime  # the first firing, in UTC
    zone: str
    spec: str  # as people read it

    @property
    def recurring(self) -> bool:
        return self.trigger != "once"


# words ----------------------------------------------------------------------------------------------------
_SECONDS = {"minute": 60, "min": 60, "m": 60, "hour": 3600, "hr": 3600, "h": 3600, "day": 86400, "d": 86400,
            "week": 604800, "w": 604800}
_UNIT = r"(?:minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)"
_AMOUNT = rf"(?:\d+|an?(?![a-z])|one(?![a-z]))\s*{_UNIT}(?![a-z])"
_TIME = r"(?:\d{1,2}:\d{2}(?:\s*[ap]m)?|\d{1,2}\s*[ap]m|noon|midnight)"
_AT = rf"(?:at\s+)?(?P<time>{_TIME})"
_WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_FULL = dict(zip(_WEEK, ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]))
_DAY_WORDS = set(_WEEK) | set(_FULL.values()) | {f + "s" for f in _FULL.values()} | {"tues", "weds", "thur", "thurs"}
_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"
_DAYS = rf"(?:weekdays?|weekends?|{_DAY}(?:\s*(?:,|and|&)?\s*{_DAY})*)"
_ZONE_ARG = re.compile(r"(?:^|\s)tz=(\S+)", re.I)


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"Unknown time zone {name!r}: use an IANA name such as Europe/Berlin, "
                            "America/New_York or UTC.") from None


def take_zone(text: str) -> tuple[str | None, str]:
    """Pull a `tz=Zone` argument out of text; returns (zone or None, the rest)."""
    match = _ZONE_ARG.search(text)
    if match is None:
        return None, text
    return match.group(1), (text[:match.start()] + " " + text[match.end():]).strip()


def parse_when(when: str, now: datetime, zone: str) -> Plan:
    """The Plan for a WHEN (which may carry its own `tz=`). Raises Unparseable or ScheduleError (e.g. the past)."""
    named, rest = take_zone(when)
    zone = named or zone
    tz = zone_of(zone)
    text = " ".join(rest.lower().split()).strip(" .")
    for reader in (_cron, _every_at, _every, _in, _relative_day, _weekday, _iso, _clock_only):
        plan = reader(text, now, tz, zone)
        if plan is not None:
            if not plan.recurring and plan.first <= now:
                raise ScheduleError(f"{plan.spec} ({zone}) is in the past: it is {local(now, zone)} there now. "
                                    "Give a time in the future.")
            return plan
    raise Unparseable(f"Cannot read the time {when.strip()!r}. Examples: {EXAMPLES}.")


def split_when(text: str, now: datetime, zone: str) -> tuple[Plan, str]:
    """Split `WHEN WHAT` at the longest leading WHEN that parses; a quoted WHEN ("friday 10:00") is taken as is."""
    named, text = take_zone(text.strip())
    suffix = f" tz={named}" if named else ""
    quoted = re.match(r"\s*[\"'“](.+?)[\"'”]\s+(.*)", text, re.S)
    if quoted:
        return parse_when(quoted.group(1) + suffix, now, zone), quoted.group(2).strip()
    words = list(re.finditer(r"\S+", text))
    for n in range(min(len(words) - 1, 12), 0, -1):
        try:
            plan = parse_when(text[:words[n - 1].end()] + suffix, now, zone)
        except Unparseable:
            continue
        return plan, text[words[n].start():].strip()
    try:
        parse_when(text + suffix, now, zone)
    except Unparseable:
        pass
    else:
        raise ScheduleError("Say what the schedule is about after the time, for example "
                            f"`add {text.strip()} check the release notes`.")
    raise Unparseable(f"Cannot find a time at the start of {text.strip()!r}. Write WHEN then WHAT, for example "
                      f"`add friday 10:00 release notes`. WHEN can be {EXAMPLES}.")


# readers: each returns a Plan, or None when the text is not its kind ---------------------------------------
def _cron(text: str, now: datetime, tz: ZoneInfo, zone: str) -> Plan | None:
    match = re.fullmatch(r"cron:?\s+(.+)", text)
    if match is None:
        return None
    fields = match.group(1).split()
    if len(fields) != 5:
        return None
    canonical = " ".join(fields[:4] + [_cron_weekdays(fields[4])])
    first = _first(cron_trigger(canonical, tz), now)
    if first is None:
        raise ScheduleError(f"The cron line {' '.join(fields)!r} never fires.")
    return Plan(f"cron:{canonical}", _utc(first), zone, f"cron {' '.join(fields)}")


def _every_at(text: str, now: datetime, tz: ZoneInfo, zone: str) -> Plan | None:
    match = re.fullmatch(rf"(?:every\s+day|each\s+day|daily|every\s+(?P<days>{_DAYS}))\s+{_AT}", text)
    if match is None:
        return None
    at = _clock(match.group("time"))
    days = _weekday_set(match.group("days")) if match.group("days") else []
    dow = ",".join(days) if days else "*"
    canonical = f"{at.minute} {at.hour} * * {dow}"
    first = _first(cron_trigger(canonical, tz), now)
    assert first is not None
    which = "day" if not days else "weekday" if days == _WEEK[:5] else ", ".join(_FULL[d] for d in days)
    return Plan(f"cron:{canonical}", _utc(first), zone, f"every {which} at {at:%H:%M}")


def _every(text: str, now: datetime, tz: ZoneInfo, zone: str) -> Plan | None:
    match = re.fullmatch(rf"every\s+(?P<n>\d+\s*)?(?P<unit>{_UNIT})|(?P<ly>hourly|daily|weekly)", text)
    if match is None:
        return None
    if match.group("ly"):
        n, unit = 1, {"hourly": "hour", "daily": "day", "weekly": "week"}[match.group("ly")]
    else:
        n, unit = int(match.group("n") or 1), _unit(match.group("unit"))
    if n <= 0:
        raise ScheduleError("A repeating schedule needs an interval above zero.")
    seconds = n * _SECONDS[unit]
    return Plan(f"every:{seconds}", _utc(now) + timedelta(seconds=seconds), zone,
                f"every {n} {unit}s" if n > 1 else f"every {unit}")


def _in(text: str, now: datetime, tz: ZoneInfo, zone: str) -> Plan | None:
    match = re.fullmatch(rf"in\s+({_AMOUNT}(?:\s*(?:,|and)?\s*{_AMOUNT})*)", text)
    if match is None:
        return None
    total = 0
    for part in re.finditer(rf"(\d+|an?(?![a-z])|one(?![a-z]))\s*({_UNIT})(?![a-z])", match.group(1)):
        count = int(part.group(1)) if part.group(1).isdigit() else 1
        total += count * _SECONDS[_unit(part.group(2))]
    if total <= 0:
        raise ScheduleError("`in ...` needs a time above zero, such as `in 30 minutes`.")
    first = _utc(now) + timedelta(seconds=total)
    return Plan("once", first, zone, local(first, zone))


def _relative_day(text: str, now: datetime, tz: ZoneInfo, zone: str) -> Plan | None:
    match = re.fullmatch(rf"(?P<day>today|tonight|tomorrow)\s+{_AT}", text)
    if match is None:
        return None
    day = match.group("day")
    today = now.astimezone(tz).date()
    return _once(today + timedelta(days=1 if day == "tomorrow" else 0), _clock(match.group("time")), tz, zone)


def _weekday(text: str, now: datetime, tz: ZoneInfo, zone: str) -> Plan | None:
    match = re.fullmatch(rf"(?:on\s+|next\s+|this\s+)?(?P<day>{_DAY})\s+{_AT}", text)
    if match is None:
        return None
    days = _weekday_set(match.group("day"))
    at = _clock(match.group("time"))
    today = now.astimezone(tz).date()
    ahead = (_WEEK.index(days[0]) - today.weekday()) % 7
    plan = _once(today + timedelta(days=ahead), at, tz, zone)
    return plan if plan.first > now else _once(today + timedelta(days=ahead + 7), at, tz, zone)


def _iso(text: str, now: datetime, tz: ZoneInfo, zone: str) -> Plan | None:
    match = re.fullmatch(rf"(?P<date>\d{{4}}-\d{{2}}-\d{{2}})(?:\s+at)?\s+(?P<time>{_TIME})", text)
    if match:
        return _once(_date(match.group("date")), _clock(match.group("time")), tz, zone)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}t\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:?\d{2})?", text):
        return None
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScheduleError(f"Not a valid date and time: {text!r} ({exc}).") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    return Plan("once", _utc(moment), zone, local(moment, zone))


def _clock_only(text: str, now: datetime, tz: ZoneInfo, zone: str) -> Plan | None:
    match = re.fullmatch(_AT, text)
    if match is None:
        return None
    today = now.astimezone(tz).date()
    plan = _once(today, _clock(match.group("time")), tz, zone)
    return plan if plan.first > now else _once(today + timedelta(days=1), _clock(match.group("time")), tz, zone)


# pieces ---------------------------------------------------------------------------------------------------
def _first(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The first firing strictly after now (a cron line matching this very second starts next time)."""
    return trigger.get_next_fire_time(None, now + timedelta(seconds=1))  # type: ignore[no-any-return]


def _once(day: date, at: time, tz: ZoneInfo, zone: str) -> Plan:
    moment = datetime.combine(day, at, tzinfo=tz)
    return Plan("once", _utc(moment), zone, local(moment, zone))


def _clock(text: str) -> time:
    text = text.replace(" ", "")
    if text in ("noon", "midnight"):
        return time(12 if text == "noon" else 0, 0)
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?([ap]m)?", text)
    assert match is not None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half:
        if not 1 <= hour <= 12:
            raise ScheduleError(f"{text!r} is not a time: with am/pm the hour is 1 to 12.")
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ScheduleError(f"{text!r} is not a time of day (00:00 to 23:59).")
    return time(hour, minute)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ScheduleError(f"{text!r} is not a date (YYYY-MM-DD).") from None


def _unit(word: str) -> str:
    word = word.rstrip("s") if len(word) > 2 else word
    return {"min": "minute", "m": "minute", "hr": "hour", "h": "hour", "d": "day", "w": "week"}.get(word, word)


def _weekday_set(text: str) -> list[str]:
    if text.startswith("weekday"):
        return _WEEK[:5]
    if text.startswith("weekend"):
        return _WEEK[5:]
    days = set()
    for word in re.findall(r"[a-z]+", text):
        if word == "and":
            continue
        if word not in _DAY_WORDS:
            raise Unparseable(f"{word!r} is not a day of the week.")
        days.add(word[:3])
    return [d for d in _WEEK if d in days]


def _cron_weekdays(field: str) -> str:
    """Standard cron counts weekdays from Sunday = 0 (or 7); APScheduler 3 from Monday = 0. Names mean the
    same to both, so the field is rewritten as names."""
    if field in ("*", "?"):
        return "*"
    names = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    chosen: set[int] = set()
    for part in field.lower().split(","):
        match = re.fullmatch(r"(\*|[a-z]{3}|\d)(?:-([a-z]{3}|\d))?(?:/(\d+))?", part)
        if match is None:
            raise ScheduleError(f"{field!r} is not a cron day-of-week field (0-7 or sun-sat, lists and ranges).")
        start, end, step = match.group(1), match.group(2), int(match.group(3) or 1)
        low = 0 if start == "*" else _cron_day(start, names, is_end=False)
        high = 6 if start == "*" else _cron_day(end, names, is_end=True) if end else low
        if high < low or step < 1:
            raise ScheduleError(f"{field!r}: a day range must run forwards, from Sunday (0) to Saturday (6 or 7).")
        if start != "*" and end is None and match.group(3):
            high = 7
        chosen.update(day % 7 for day in range(low, high + 1, step))
    return ",".join(names[d] for d in (1, 2, 3, 4, 5, 6, 0) if d in chosen)


def _cron_day(token: str, names: list[str], is_end: bool) -> int:
    if token.isdigit():
        if int(token) > 7:
            raise ScheduleError(f"{token} is not a cron weekday (0-7).")
        return int(token)
    if token not in names:
        raise ScheduleError(f"{token!r} is not a cron weekday (sun-sat).")
    index = names.index(token)
    return 7 if is_end and index == 0 else index


def cron_trigger(fields: str, tz: ZoneInfo) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(fields, timezone=tz)
    except ValueError as exc:
        raise ScheduleError(f"Not a valid cron line {fields!r}: {exc}. Fields: minute hour day-of-month month "
                            "day-of-week, e.g. `cron: 0 10 * * FRI`.") from None


def build_trigger(canonical: str, zone: str, anchor: datetime) -> BaseTrigger:
    """The APScheduler trigger of a canonical trigger; `anchor` is the run time of `once` and the grid of `every`."""
    if canonical == "once":
        return DateTrigger(run_date=anchor, timezone=timezone.utc)
    kind, _, body = canonical.partition(":")
    if kind == "cron":
        return cron_trigger(body, zone_of(zone))
    if kind == "every":
        return IntervalTrigger(seconds=int(body), start_date=anchor, timezone=timezone.utc)
    raise ValueError(f"unknown trigger {canonical!r}")


def catch_up(trigger: BaseTrigger, due: datetime, now: datetime,
             limit: int = 100_000) -> tuple[datetime, int, datetime | None]:
    """For a firing due at `due`, seen at `now`: the latest firing time at or before now, how many earlier ones
    it passes over (missed while nothing ran), and the next firing after now (None: it does not repeat)."""
    latest, passed = due, 0
    for _ in range(limit):
        following = trigger.get_next_fire_time(latest, now)
        if following is None or following > now:
            return latest, passed, following
        latest, passed = following, passed + 1
    return latest, passed, _first(trigger, now)


def fire_times(trigger: BaseTrigger, after: datetime) -> Iterator[datetime]:
    """The trigger's firing times after `after`, in order."""
    current = after
    while True:
        following = trigger.get_next_fire_time(current, current)
        if following is None:
            return
        yield following
        current = following


def shortest_gap(trigger: BaseTrigger, start: datetime, samples: int = 60,
                 horizon: timedelta = timedelta(days=400)) -> timedelta | None:
    """The shortest time between consecutive firings over the next `samples` firings (within `horizon`)."""
    shortest: timedelta | None = None
    previous = start
    for n, moment in enumerate(fire_times(trigger, start)):
        if n >= samples or moment - start > horizon:
            break
        gap = moment - previous
        shortest = gap if shortest is None else min(shortest, gap)
        previous = moment
    return shortest


def local(moment: datetime, zone: str) -> str:
    return moment.astimezone(zone_of(zone)).strftime("%a %Y-%m-%d %H:%M")


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def span(delta: timedelta) -> str:
    """A rough duration for people: "2 days 3 hours", "45 minutes", "less than a minute"."""
    minutes = int(abs(delta).total_seconds() // 60)
    parts = [(minutes // 1440, "day"), (minutes // 60 % 24, "hour"), (minutes % 60, "minute")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n][:2]
    return " ".join(words) or "less than a minute"
