"""Timed events for the agent: schedule a message to itself for later (once or repeating), list and cancel them."""

from __future__ import annotations

from agent.errors import ToolFailure
from agent.schedule.book import describe
from agent.schedule.drafts import TurnSchedules
from agent.schedule.parse import EXAMPLES, ScheduleError
from agent.tools.context import ToolContext
from agent.tools.registry import Tool, tool


def _service(ctx: ToolContext) -> TurnSchedules:
    if ctx.schedules is None:
        raise ToolFailure("Scheduling is not available here; tell the people you cannot set reminders.")
    return ctx.schedules


@tool()
def schedule_message(ctx: ToolContext, when: str, text: str, timezone: str | None = None) -> str:
    """Schedule a timed event, once or repeating.

    Args:
        when: "in 2 hours", "every monday 9:00", "cron: 0 10 * * FRI"
        timezone: IANA
    """
    service = _service(ctx)
    who = f"{ctx.speaker.name} via the agent" if ctx.speaker else "the agent"
    try:
        plan = service.read_when(ctx.session, int(ctx.agent.id or 0), when, timezone)
        row = service.add(ctx.agent, plan, text, who, ctx.thread)
    except ScheduleError as exc:
        raise ToolFailure(f"Scheduling failed: {exc} `when` examples: {EXAMPLES}.") from exc
    return f"Scheduled {describe(row)}. Tell the people when it will fire; cancel_schedule({row.id}) stops it."


@tool()
def list_schedules(ctx: ToolContext) -> str:
    """List active schedules."""
    service = _service(ctx)
    agent_id = int(ctx.agent.id or 0)
    rows = service.listing(ctx.session, agent_id)
    zone = service.zone(ctx.session, agent_id)
    if not rows:
        return f"No active schedules. The channel's time zone is {zone}."
    return f"Active schedules (channel time zone {zone}):\n" + "\n".join(describe(r) for r in rows)


@tool()
def cancel_schedule(ctx: ToolContext, schedule_id: int) -> str:
    """Cancel a schedule."""
    try:
        row = _service(ctx).cancel(ctx.session, int(ctx.agent.id or 0), schedule_id)
    except ScheduleError as exc:
        raise ToolFailure(f"Cancel failed: {exc} Consider list_schedules to see the ids.") from exc
    return f"Cancelled #{row.id}: {row.text}"


SCHEDULE_TOOLS: list[Tool] = [schedule_message, list_schedules, cancel_schedule]
