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

from agent.archival.catalog import Catalog
from agent.db.models import Agent
from agent.errors import UserError
from agent.inbox import Question
from agent.loading.inputs import InputFile
from agent.loading.loader import Loader, LoadReport
from agent.memory.core import PERSON_PREFIX, Speaker
from agent.schedule.book import ScheduleBook
from agent.schedule.commands import run_schedule_command
from agent.schedule.delivery import Target
from agent.service import AgentService
from agent.turns import EventSink, Incoming, TurnResult

CHANNEL_PERSONA = "channel_helper"
T = TypeVar("T")


@dataclass(frozen=True)
class Channel:
    """Where a conversation happens. `scope` isolates workspaces: "slack:T123", "discord:456"."""

    scope: str
    id: str
    private_to: str = ""  # a user id for a DM: the agent is that person's own

    @property
    def agent_name(self) -> str:
        return f"dm:{self.private_to}" if self.private_to else f"channel:{self.id}"


def source_name_for(file_name: str) -> str:
    """A source name from an uploaded file's name: its stem, in letters, digits, '-', '_' and '.'."""
    stem = PurePath(file_name).stem or "upload"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_")[:100] or "upload"


class ChatCore:
    def __init__(self, agents: AgentService, loader: Loader, catalog: Catalog, persona: str = CHANNEL_PERSONA,
                 schedules: ScheduleBook | None = None) -> None:
        self.agents = agents
        self.loader = loader
        self.catalog = catalog
        self.persona = persona
        self.schedules = schedules

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

    def load(self, channel: Channel, files: list[InputFile]) -> list[tuple[str, LoadReport]]:
        """Load each upload as a source of the workspace named after the file, and attach it to the channel."""
        agent = self.agent(channel)
        reports = []
        for file in files:
            name = source_name_for(file.name)
            report = self.loader.load(channel.scope, name, [file])
            if self.catalog.find(channel.scope, name) is not None and (report.passages or report.of("unchanged")):
                self.agents.attach(int(agent.id or 0), name)
            reports.append((name, report))
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

    def schedule(self, channel: Channel, text: str, author: str = "", thread: str = "") -> str:
        """`/schedule list | add WHEN WHAT | cancel ID | tz [ZONE]` for the channel's agent."""
        if self.schedules is None:
            raise UserError("Schedules are not available in this process.")
        agent = self.agent(channel)  # created with this core's persona on first use
        return run_schedule_command(self.schedules, int(agent.id or 0), text, author, thread)

    def source_names(self, scope: str, prefix: str = "") -> list[str]:
        names = [s.source.name for s in self.catalog.summaries(scope)]
        return [n for n in names if n.lower().startswith(prefix.lower())] if prefix else names

    def sources_text(self, channel: Channel) -> str:
        agent = self.agent(channel)
        attached = {s.name for s in self.agents.attached(int(agent.id or 0))}
        rows = self.catalog.summaries(channel.scope)
        if not rows:
            return "No sources yet. Upload a file (PDF, text, Markdown, .docx, .html) to a channel I am in."
        lines = ["**Sources in this workspace** (attached to this channel: marked ✓)"]
        for s in rows:
            mark = "✓" if s.source.name in attached else "·"
            lines.append(f"{mark} `{s.source.name}`: {s.files} file(s), {s.documents} documents, {s.passages} passages")
        return "\n".join(lines)

    def memory_text(self, channel: Channel) -> str:
        agent = self.agent(channel)
        view = self.agents.memory(int(agent.id or 0))
        lines = [f"**Memory of this channel's agent** ({agent.name})"]
        for block in view.blocks:
            title = f"person {block.title}" if block.label.startswith(PERSON_PREFIX) else block.label
            lines.append(f"*{title}* ({len(block.value)}/{block.limit} characters)\n```\n{block.value or ' '}\n```")
        lines.append(f"Recall: {view.messages} messages ({view.in_context} in context). Archival: {view.archival} "
                     f"saved passages. Attached sources: {', '.join(view.sources) or 'none'}.")
        return "\n".join(lines)


def load_report_text(name: str, report: LoadReport) -> str:
    """The per-upload answer: the loader's summary line, then one line per file that failed or was skipped."""
    lines = []
    if report.passages:
        lines.append(f"Loaded {report.passages} passages and {report.documents} documents from {name}")
    for outcome in report.of("unchanged"):
        lines.append(f"`{outcome.name}` is already loaded as `{name}`; nothing added.")
    for outcome in report.of("failed"):
        lines.append(f"Could not load `{outcome.name}`: {outcome.reason}")
    return "\n".join(lines) or f"Nothing was loaded from {name}."

