"""What goes into a turn and what comes out of it, in platform-neutral terms: every adapter and the schedules
speak these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.memory.core import Speaker


@dataclass(frozen=True)
class Incoming:
    """A platform-neutral input: a person's message, a timed event (kind="event") or a login (kind="login")."""

    text: str
    speaker: Speaker | None = None
    thread: str = ""
    kind: str = "message"


@dataclass(frozen=True)
class TurnEvent:
    kind: str  # thought | tool | reply | notice | draft (the growing text of a streamed reply)
    text: str
    tool: str = ""


@dataclass
class TurnResult:
    replies: list[str] = field(default_factory=list)
    events: list[TurnEvent] = field(default_factory=list)
    notice: str = ""  # shown to people when there is no reply or the turn failed
    failed: bool = False
    steps: int = 0
    prompt_parts: list[dict[str, int]] = field(default_factory=list)  # token split of each call


EventSink = Callable[[TurnEvent], None]
