"""What a tool may touch during one turn: the agent's memories, who is speaking, and the replies sent."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from agent.db.models import Agent
from agent.memory.archival import ArchivalMemory
from agent.memory.core import CoreMemory, Speaker
from agent.schedule.drafts import TurnSchedules


@dataclass
class ToolContext:
    session: Session
    agent: Agent
    core: CoreMemory
    archival: ArchivalMemory
    speaker: Speaker | None
    sent: list[str] = field(default_factory=list)
    thread: str = ""  # the thread the input came from; the agent's scope and name give its channel
    schedules: TurnSchedules | None = None  # the turn's timed events; None where scheduling is off
