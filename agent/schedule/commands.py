"""`/schedule ...` for people, platform-neutral: the console, Slack and Discord all call this and render the
answer (a sentence, or the channel's schedules as data).

    run_schedule_command(schedules, agent_id, "add friday 10:00 release notes", author="Ann", thread="")

Errors raise ScheduleError (a UserError): its text is safe to show in the channel as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session

from agent.db.models import Agent, as_utc
from agent.errors import NotFound
from agent.schedule.book import ScheduleBook, describe
from agent.schedule.parse import EXAMPLES, ScheduleError, local, span

USAGE = f"""**Schedules** (reminders and repeating prompts: when one fires, the agent decides what to post here)
`/schedule list`: this channel's schedules
`/schedule add WHEN WHAT`: e.g. `/schedule add friday 10:00 release notes`
`/schedule cancel ID`: stop one
`/schedule tz [ZONE]`: show or set this channel's time zone (e.g. Europe/Berlin)
WHEN: {EXAMPLES}."""


@dataclass(frozen=True)
class ScheduleItem:
    id: int
    description: str  # what and when, as `describe` says it
    due: str = ""  # for a one-off: "in 3 h" or "due"; "" for a repeating one


@dataclass(frozen=True)
class ScheduleAnswer:
    """What `/schedule` answers: a sentence (Markdown), or, for a listing, the channel's schedules and zone."""

    text: str = ""
    zone: str = ""
    listing: list[ScheduleItem] | None = None


def run_schedule_command(schedules: ScheduleBook, agent_id: int, text: str, author: str = "",
                         thread: str = "") -> ScheduleAnswer:
    """Run `/schedule TEXT` for the agent `agent_id` (the console's, or a channel's) and return the answer.
    A schedule added from a thread posts in that thread."""
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower() or "list", rest.strip()
    with schedules.session() as s:
        agent = s.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"Agent {agent_id} no longer exists.")
        if verb in ("list", "ls"):
            return _listing(schedules, s, agent_id)
        return ScheduleAnswer(_change(schedules, s, agent, verb, rest, author, thread))


def _change(schedules: ScheduleBook, s: Session, agent: Agent, verb: str, rest: str, author: str,
            thread: str) -> str:
    agent_id = int(agent.id or 0)
    if verb == "add":
        if not rest:
            raise ScheduleError(f"Usage: `/schedule add WHEN WHAT`. WHEN: {EXAMPLES}.")
        plan, what = schedules.read_line(s, agent_id, rest)
        row = schedules.add(s, agent, plan, what, author, thread)
        schedules.commit(s)
        wait = span(plan.first - schedules.clock())
        return f"Scheduled {describe(row)}. First firing: {local(plan.first, plan.zone)} (in {wait})."
    if verb in ("cancel", "rm", "remove", "delete"):
        row = schedules.cancel(s, agent_id, _schedule_id(rest))
        schedules.commit(s)
        return f"Cancelled #{row.id}: {row.text}"
    if verb in ("tz", "timezone", "zone"):
        if not rest:
            return f"This channel's time zone is {schedules.zone(s, agent_id)}. Change it: `/schedule tz ZONE`."
        zone = schedules.set_zone(s, agent_id, rest)
        schedules.commit(s)
        return f"This channel's time zone is now {zone}; new schedules read times in it."
    if verb == "help":
        return USAGE
    raise ScheduleError(f"Unknown `/schedule {verb}`.\n{USAGE}")


def _listing(schedules: ScheduleBook, s: Session, agent_id: int) -> ScheduleAnswer:
    items = []
    for row in schedules.listing(s, agent_id):
        upcoming = as_utc(row.next_fire_at) if row.next_fire_at else None
        left = upcoming - schedules.clock() if upcoming and row.trigger == "once" else None
        due = "" if left is None else f"in {span(left)}" if left > timedelta(0) else "due"
        items.append(ScheduleItem(int(row.id or 0), describe(row), due))
    return ScheduleAnswer(zone=str(schedules.zone(s, agent_id)), listing=items)


def _schedule_id(text: str) -> int:
    token = text.strip().lstrip("#")
    if not token.isdigit():
        raise ScheduleError("Usage: `/schedule cancel ID`, with the number from `/schedule list` (e.g. 3 or #3).")
    return int(token)
