"""The schedule tables: each timed event of an agent, and the time zone each channel's agent uses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel

from agent.db.models import utcnow

ACTIVE, DONE, MISSED, CANCELLED = "active", "done", "missed", "cancelled"
DRAFT = "draft"  # added by a turn that has not landed yet: never fires (agent/schedule/drafts.py)


def _moment(nullable: bool = True) -> Column:  # type: ignore[type-arg]
    # Aware timestamps (timestamptz on PostgreSQL): firing times must not shift with a server's TimeZone.
    return Column(DateTime(timezone=True), nullable=nullable)


class Schedule(SQLModel, table=True):
    """A timed event of one agent. The APScheduler job `schedule-<id>` only wakes it up; this row decides.

    agent_id has no foreign key on purpose: deleting an agent must not be blocked by its schedules; a firing
    whose agent is gone retires the schedule. `revision` is bumped by every claim, so a firing is claimed once.
    """

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(index=True)
    platform: str = Field(max_length=50, index=True)  # the scope's prefix: its job store and its leader
    scope: str = Field(max_length=200)
    channel: str = Field(default="", max_length=200)
    user: str = Field(default="", max_length=200)  # the person, for a direct-message agent
    thread: str = Field(default="", max_length=200)
    text: str = Field(default="", sa_column=Column(Text))
    spec: str = Field(max_length=300)  # as people read it: "every monday at 10:00"
    trigger: str = Field(max_length=200)  # canonical: once | cron:<5 fields> | every:<seconds>
    timezone: str = Field(max_length=100)
    status: str = Field(default=ACTIVE, max_length=20, index=True)  # draft | active | done | missed | cancelled
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_moment(nullable=False))
    next_fire_at: datetime | None = Field(default=None, sa_column=_moment())
    last_fired_at: datetime | None = Field(default=None, sa_column=_moment())
    ended_at: datetime | None = Field(default=None, sa_column=_moment())
    fire_count: int = 0
    missed_count: int = 0
    revision: int = 0


class ChannelZone(SQLModel, table=True):
    """The time zone a channel's agent reads times in, when a schedule names none."""

    agent_id: int = Field(primary_key=True)
    timezone: str = Field(max_length=100)
