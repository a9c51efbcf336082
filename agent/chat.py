"""Chat-platform operations in platform-neutral terms: a channel's agent, its turns, uploads, /attach,
/detach, /sources and /memory. Slack and Discord adapters translate their events into these calls and
the returned text (Markdown) back into their own messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import PurePath
from typing import TypeVar

from agent.archival import stewardship
from agent.archival.audience import CHANNEL, WORKSPACE, Origin, agent_name_for, place_for
from agent.archival.catalog import Catalog
from agent.archival.sources import Sources
from agent.archival.stewardship import Actor
from agent.db.models import Agent
from agent.errors import NotFound, UserError
from agent.inbox import Question
from agent.loading.inputs import InputFile
from agent.loading.loader import Loader, LoadReport
from agent.memory.core import Speaker
from agent.schedule.book import ScheduleBook
from agent.schedule.commands import ScheduleAnswer, run_schedule_command
from agent.schedule.delivery import Target
from agent.service import AgentService, MemoryView
from agent.turns import EventSink, Incoming, TurnResult

CHANNEL_PERSONA = "channel_helper"
NOT_SHAREABLE = ("A source from here cannot be shared: this conversation belongs to no server or workspace, so "
                 "sharing it would reach everyone who writes to me privately. Upload the file in a channel instead.")
SOURCES_USAGE = ("Usage: `/sources` lists the sources this channel can use; `/sources share NAME` shows one "
                 "uploaded here to the whole workspace; `/sources delete NAME` deletes one (its uploader or an "
                 "admin).")
T = TypeVar("T")


@dataclass(frozen=True)
class Channel:
    """Where a conversation happens. `scope` isolates workspaces: "slack:T123", "discord:456". `private` is the
    adapter's word that not every member of the workspace can read it (a DM, a group DM, a private channel):
    files uploaded there stay there."""

    scope: str
    id: str
    private_to: str = ""  # a user id for a DM: the agent is that person's own
    private: bool = False
    named: str = ""  # an agent chosen by its name rather than by a channel (the console)
    shareable: bool = True  # False where no wider audience exists to share with (a Discord DM is in no server)

    @property
    def place(self) -> str:
        """What a channel-only source belongs to and what this channel sees (agent/archival/audience.py)."""
        return self.named or place_for(self.id, self.private_to)

    @property
    def agent_name(self) -> str:
        return self.named or agent_name_for(self.place)


@dataclass(frozen=True)
class SourceItem:
    """A source as a channel sees it, for a listing each adapter renders its own way."""

    name: str
    files: int
    documents: int
    passages: int
    attached: bool  # to this channel's agent
    channel_only: bool  # seen only in this channel


@dataclass(frozen=True)
class SourcesAnswer:
    """What `/sources ...` answers: a listing (`listing` is not None), or a sentence."""

    text: str = ""
    changed: bool = False  # a source was shared or deleted
    listing: list[SourceItem] | None = None


def source_name_for(file_name: str) -> str:
    """A source name from an uploaded file's name: its stem, in letters, digits, '-', '_' and '.'."""
    stem = PurePath(file_name).stem or "upload"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_")[:100] or "upload"


class ChatCore:
    def __init__(self, agents: AgentService, loader: Loader, catalog: Catalog, persona: str = CHANNEL_PERSONA,
                 schedules: ScheduleBook | None = None, public_uploads: str = WORKSPACE,
                 sources: Sources | None = None) -> None:
        self.agents = agents
        self.loader = loader
        self.catalog = catalog
        self.persona = persona
        self.schedules = schedules
        self.public_uploads = public_uploads  # who sees a public channel's uploads: "workspace" or "channel"
        self.sources = sources  # for deletes from chat

    def agent(self, channel: Channel) -> Agent:
        return self.agents.open(channel.scope, channel.agent_name, persona=self.persona)

    def submit(self, channel: Channel, speaker: Speaker, text: str, thread: str = "",
               on_event: EventSink | None = None, ticket: int = 0) -> Future[TurnResult]:
        """Queue a person's message for the channel's agent and return at once (the agent is opened, or created
        on first use, in its lane); turns of one channel run one at a time, in order. `ticket`: the message's
        row in the inbox, from `accept` or `take`."""
        return self.agents.submit_named(channel.scope, channel.agent_name, Incoming(text, speaker, thread), on_event,
                                        persona=self.persona, ticket=ticket)

    def question(self, channel: Channel, key: str, speaker: Speaker, text: str, thread: str, reply_to: Target,
                 confirmed: bool = True) -> Question:
        """A platform event as an inbox question: `key` identifies the event on its platform (unique), `reply_to`
        is where an apology goes if its process dies before answering."""
        return Question(key, channel.scope, channel.agent_name, Incoming(text, speaker, thread), reply_to, confirmed)

    def accept(self, question: Question, handle: Callable[[int], T]) -> Future[T] | None:
        """Write the question to the durable inbox (before the platform gets its ack) and run `handle(ticket)` in
        the lane of its agent; None when the event was already accepted, by this or another process."""
        return self.agents.accept(question, handle)

    def take(self, question: Question) -> int | None:
        """Write the question to the inbox only (the adapter submits its turn with the ticket, and settles the
        ticket if it runs none); None when already accepted."""
        return self.agents.inbox.accept(question)

    def confirm(self, ticket: int) -> None:
        """The accepted event turned out to be for the bot (a follow-up in a thread it is in)."""
        self.agents.inbox.confirm(ticket)

    def settle(self, ticket: int) -> None:
        """No turn runs for this ticket (not for the bot, or nothing to answer)."""
        self.agents.inbox.settle(ticket)

    def in_lane(self, channel: Channel, fn: Callable[[], T]) -> Future[T]:
        """Run an adapter's handling of one event in the lane of the channel's agent, after the earlier ones of
        that channel; a turn it submits runs at once, in the same lane."""
        return self.agents.in_lane(channel.scope, channel.agent_name, fn)

    def audience(self, channel: Channel) -> str:
        """Who sees a file uploaded in `channel`: only that channel when it is private (or when public uploads
        are set to stay in their channel), else the workspace."""
        return CHANNEL if channel.private or self.public_uploads == CHANNEL else WORKSPACE

    def load(self, channel: Channel, files: list[InputFile], uploader: str = "") -> list[tuple[str, LoadReport]]:
        """Load each upload as the channel's source named after the file (its own, if another channel has that
        name: `notes-2`), visible as `audience` says, and attach it to the channel's agent."""
        agent = self.agent(channel)
        origin = Origin(channel.place, self.audience(channel), uploader or channel.private_to)
        reports = []
        for file in files:
            report = self.loader.load(channel.scope, source_name_for(file.name), [file], origin=origin)
            if report.passages or report.of("unchanged"):
                try:
                    self.agents.attach(int(agent.id or 0), report.source)
                except NotFound:  # its only file failed, and the new source is gone again
                    pass
            reports.append((report.source, report))
        return reports

    def attach(self, channel: Channel, source: str) -> str:
        agent = self.agent(channel)
        found, new = self.agents.attach(int(agent.id or 0), source)
        summary = self.catalog.summary(found)
        if not new:
            return f"`{found.name}` is already attached to this channel's agent."
        return (f"Attached `{found.name}` ({summary.passages} passages from {summary.files} file(s)) "
                "to this channel's agent.")

    def detach(self, channel: Channel, source: str) -> str:
        agent = self.agent(channel)
        self.agents.detach(int(agent.id or 0), source)  # its returned Source is expired after the commit
        return f"Detached `{source}` from this channel's agent."

    def knows_thread(self, channel: Channel, thread: str) -> bool:
        """Whether the channel's agent has talked in `thread`: later messages there need no new mention."""
        agent = self.agents.find(channel.scope, channel.agent_name)
        return agent is not None and bool(thread) and self.agents.has_thread(int(agent.id or 0), thread)

    def schedule(self, channel: Channel, text: str, author: str = "", thread: str = "") -> ScheduleAnswer:
        """`/schedule list | add WHEN WHAT | cancel ID | tz [ZONE]` for the channel's agent."""
        if self.schedules is None:
            raise UserError("Schedules are not available in this process.")
        agent = self.agent(channel)  # created with this core's persona on first use
        return run_schedule_command(self.schedules, int(agent.id or 0), text, author, thread)

    def sources_command(self, channel: Channel, text: str, user: str = "", admin: bool = False) -> SourcesAnswer:
        """`/sources [list] | share NAME | delete NAME [confirm]`; share and delete are for the source's uploader
        and admins. `changed` says whether the workspace's sources changed (an adapter shows that to the channel)."""
        args = text.split()
        verb = args[0].lower() if args else "list"
        actor = Actor(channel.scope, channel.place, user or channel.private_to, admin)
        if verb == "list" and len(args) <= 1:
            return SourcesAnswer(listing=self.source_list(channel))
        if verb == "share" and len(args) == 2:
            if not channel.shareable:
                raise UserError(NOT_SHAREABLE)
            before = self.catalog.get(channel.scope, args[1], channel.place).audience
            return SourcesAnswer(stewardship.share(self.catalog, actor, args[1]), changed=before != WORKSPACE)
        confirmed = len(args) == 3 and args[2].lower() == "confirm"
        if verb == "delete" and (len(args) == 2 or confirmed) and self.sources is not None:
            return SourcesAnswer(stewardship.delete(self.sources, actor, args[1], confirmed), changed=confirmed)
        raise UserError(SOURCES_USAGE)

    def file_deleted(self, scope: str, ref: str) -> list[str]:
        """An uploaded file was deleted on its platform: its document goes (and a source left empty). Returns the
        names of the sources it was in."""
        return self.sources.forget_file(scope, ref) if self.sources is not None else []

    def source_names(self, channel: Channel, prefix: str = "") -> list[str]:
        """The names of the sources this channel can see (for a picker or autocomplete)."""
        names = [s.source.name for s in self.catalog.summaries(channel.scope, channel.place)]
        return [n for n in names if n.lower().startswith(prefix.lower())] if prefix else names

    def source_list(self, channel: Channel) -> list[SourceItem]:
        """The sources this channel can see, with their sizes and whether its agent has them attached."""
        agent = self.agent(channel)
        attached = {s.name for s in self.agents.attached(int(agent.id or 0))}
        return [SourceItem(s.source.name, s.files, s.documents, s.passages, s.source.name in attached,
                           s.source.audience == CHANNEL)
                for s in self.catalog.summaries(channel.scope, channel.place)]

    def memory(self, channel: Channel) -> tuple[str, MemoryView]:
        """The channel's agent's name and what its memory holds (an adapter renders it)."""
        agent = self.agent(channel)
        return agent.name, self.agents.memory(int(agent.id or 0))
