"""Who may see a source: the whole workspace, or only the place (channel or DM) it was uploaded in.

A place is what a channel-only source belongs to and what an agent serves: a channel's id, or `dm:<user id>` for
a person's DM (a DM's agent is that person's own). Every listing, lookup, attach and archival search of a chat
channel goes through `visible_sql`; the operator's CLI passes no place and sees everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, true

WORKSPACE = "workspace"
CHANNEL = "channel"
AUDIENCES = (WORKSPACE, CHANNEL)
DM_PREFIX = "dm:"
CHANNEL_PREFIX = "channel:"


@dataclass(frozen=True)
class Origin:
    """Where an upload came from: its place, who may see it, and who uploaded it."""

    place: str
    audience: str = WORKSPACE
    uploader: str = ""


def place_for(channel_id: str, private_to: str = "") -> str:
    """The place of a channel, or of a DM with `private_to`."""
    return f"{DM_PREFIX}{private_to}" if private_to else channel_id


def agent_name_for(place: str) -> str:
    """The name of the agent that serves a place (`channel:C1`, `dm:U1`)."""
    return place if place.startswith(DM_PREFIX) else f"{CHANNEL_PREFIX}{place}"


def place_of_agent(agent_name: str) -> str:
    """The place an agent serves: the inverse of `agent_name_for`; a console agent's place is its own name."""
    return agent_name[len(CHANNEL_PREFIX):] if agent_name.startswith(CHANNEL_PREFIX) else agent_name


def visible_sql(source: Any, place: str | None) -> ColumnElement[bool]:
    """SQL for "the source (the Source model class) can be seen from `place`"; None is the operator: everything."""
    if place is None:
        return true()
    return or_(source.audience == WORKSPACE, source.origin_channel == place)


def is_visible(audience: str, origin: str, place: str | None) -> bool:
    """The same rule as `visible_sql`, for a row already read."""
    return place is None or audience == WORKSPACE or origin == place
