"""A channel's agent at a glance, for an App Home or a /memory panel: its memory blocks, the sources attached and
available, its schedules and its recent activity; and people's own edits of its memory (a block's text under the
block's character limit, a message saved to archival memory), run in the agent's queue so they never race a turn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from agent.chat import Channel, ChatCore
from agent.db.models import Agent, Message
from agent.errors import NotFound, UserError
from agent.memory import recall
from agent.memory.archival import ArchivalMemory
from agent.memory.core import PERSON_PREFIX, CoreMemory
from agent.schedule.book import describe

RECENT = 5


@dataclass(frozen=True)
class BlockView:
    label: str
    title: str  # what people read: "persona", "person Alice"
    value: str
    limit: int


@dataclass(frozen=True)
class SourceRow:
    name: str
    files: int
    passages: int
    attached: bool


@dataclass(frozen=True)
class Activity:
    at: datetime
    who: str  # a person's name, or "" for the agent
    text: str


@dataclass(frozen=True)
class ChannelHome:
    channel: Channel
    agent_name: str
    blocks: list[BlockView]
    sources: list[SourceRow]
    schedules: list[str]
    recent: list[Activity]
    messages: int

    @property
    def attached(self) -> list[SourceRow]:
        return [s for s in self.sources if s.attached]

    @property
    def available(self) -> list[SourceRow]:
        return [s for s in self.sources if not s.attached]


def channel_home(core: ChatCore, channel: Channel, recent: int = RECENT) -> ChannelHome:
    agent = core.agent(channel)
    agent_id = int(agent.id or 0)
    view = core.agents.memory(agent_id)
    blocks = [BlockView(b.label, f"person {b.title}" if b.label.startswith(PERSON_PREFIX) else b.label, b.value,
                        b.limit) for b in view.blocks]
    attached = set(view.sources)
    sources = [SourceRow(s.source.name, s.files, s.passages, s.source.name in attached)
               for s in core.catalog.summaries(channel.scope, channel.place)]
    schedules: list[str] = []
    if core.schedules is not None:
        with core.schedules.session() as s:
            schedules = [describe(row) for row in core.schedules.listing(s, agent_id)]
    return ChannelHome(channel, agent.name, blocks, sources, schedules, _recent(core, agent_id, recent),
                       view.messages)


def _recent(core: ChatCore, agent_id: int, n: int) -> list[Activity]:
    with Session(core.agents.engine) as s:
        rows = s.exec(select(Message).where(Message.agent_id == agent_id, col(Message.role).in_(("user", "assistant")))
                      .order_by(col(Message.id).desc()).limit(n * 4)).all()
    seen = [(m, recall.visible_text(m)) for m in rows]
    return [Activity(m.created_at, m.author if m.role == "user" else "", text) for m, text in seen if text][:n][::-1]


def block_limit(core: ChatCore, channel: Channel, label: str) -> int:
    """The character limit of one of the channel agent's blocks (NotFound if it has none by that label)."""
    found = next((b for b in core.agents.memory(int(core.agent(channel).id or 0)).blocks if b.label == label), None)
    if found is None:
        raise NotFound(f"This channel's agent has no memory block {label!r}.")
    return found.limit


def check_block_text(limit: int, value: str) -> None:
    if len(value) > limit:
        raise UserError(f"A memory block holds at most {limit} characters; this text has {len(value)}. Shorten it, "
                        "or ask the agent to save the details to its archival memory.")


def edit_block(core: ChatCore, channel: Channel, label: str, value: str) -> str:
    """Replace a memory block's text as a person asked; after any turn already running for this agent."""
    agent_id = int(core.agent(channel).id or 0)

    def work() -> str:
        with Session(core.agents.engine) as s:
            block = CoreMemory(s, agent_id).get(label)
            if block is None:
                raise NotFound(f"This channel's agent has no memory block {label!r}.")
            check_block_text(block.limit, value)
            block.value = value
            s.add(block)
            s.commit()
            return f"Saved the {label} block ({len(value)}/{block.limit} characters)."

    return str(core.agents.run_edit(agent_id, work))


def save_to_archival(core: ChatCore, channel: Channel, text: str, author: str) -> str:
    """A message a person chose to keep, saved to the channel agent's archival memory (searchable by it)."""
    if not text.strip():
        raise UserError("That message has no text to save.")
    agent_id = int(core.agent(channel).id or 0)
    agents = core.agents

    def work() -> str:
        with Session(agents.engine) as s:
            agent = s.get(Agent, agent_id)
            if agent is None:
                raise NotFound("This channel's agent no longer exists.")
            archival = ArchivalMemory(s, agent, agents.store, agents.searcher, agents.catalog, agents.embedder)
            try:
                saved = archival.insert(f"Message from {author}: {text}" if author else text)
                s.commit()
            except BaseException:
                archival.undo()
                raise
            return saved

    return str(agents.run_queued(agent_id, work))
