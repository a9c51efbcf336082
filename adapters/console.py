"""Chat with an agent in a terminal, like `memgpt run`: lines in, thoughts, tool calls and replies out.

Works interactively and with piped input (one message or /command per line, until end of input).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import click

from adapters.listing import schedule_markdown
from adapters.views import memory_view
from agent import (
    AgentService,
    Channel,
    ChatCore,
    Incoming,
    ScheduleBook,
    Speaker,
    Target,
    TurnEvent,
    TurnResult,
    UserError,
    format_page,
    run_schedule_command,
)

HELP = """Commands:
  /attach [source]   attach a data source (pick from a list when no name is given)
  /detach source     detach a source
  /sources           list sources and which are attached
  /memory            core memory blocks and recall/archival counts
  /search query      search archival memory (yours and attached sources)
  /pop               remove the last exchange
  /retry             ask the last message again
  /rethink text      replace the agent's last inner thought
  /rewrite text      replace the agent's last reply
  /schedule ...      timed messages: list | add WHEN WHAT | cancel ID | tz ZONE | help
  /help              this help
  /exit              leave (the agent keeps its memory)"""
ICONS = {"thought": "💭", "tool": "⚡🧠", "reply": "🤖", "notice": "⚠️ "}
STYLES: dict[str, dict[str, Any]] = {
    "thought": {"dim": True}, "tool": {"fg": "yellow"}, "reply": {"bold": True}, "notice": {"fg": "red"},
}


@dataclass
class Console:
    """The terminal front end of one agent; /attach and /sources are the same ChatCore operations Slack and
    Discord use (the console's agent is a channel chosen by name)."""

    core: ChatCore
    agent_name: str
    scope: str
    interactive: bool
    out: Callable[[str], None] = click.echo
    schedules: ScheduleBook | None = None

    @property
    def channel(self) -> Channel:
        return Channel(self.scope, self.agent_name, named=self.agent_name)

    @property
    def service(self) -> AgentService:
        return self.core.agents

    @cached_property
    def agent_id(self) -> int:
        return int(self.core.agent(self.channel).id or 0)

    @property
    def speaker(self) -> Speaker:
        user = getpass.getuser() or "you"
        return Speaker(f"console:{user}", user)

    def show(self, event: TurnEvent) -> None:
        if event.kind == "draft":  # a streamed reply still growing; the terminal prints it once it is sent
            return
        text = f"{ICONS.get(event.kind, '')} {event.text}"
        self.out(click.style(text, **STYLES.get(event.kind, {})) if self.interactive else text)

    def say(self, text: str, incoming_kind: str = "message") -> TurnResult:
        result = self.service.send(self.agent_id, Incoming(text, self.speaker, kind=incoming_kind), self.show)
        if result.failed:
            self.show(TurnEvent("notice", result.notice))
        return result

    def run(self, lines: Iterable[str]) -> None:
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            if line.startswith("/"):
                if self.command(line) == "exit":
                    return
            else:
                self.say(line)

    def command(self, line: str) -> str | None:
        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        handler = getattr(self, f"cmd_{name.lower()}", None)
        if handler is None:
            self.out(f"Unknown command /{name}.\n{HELP}")
            return None
        try:
            return handler(rest)  # type: ignore[no-any-return]
        except UserError as exc:
            self.out(f"⚠️  {exc}")
            return None

    # commands --------------------------------------------------------------------------------------------
    def cmd_help(self, _: str) -> None:
        self.out(HELP)

    def cmd_exit(self, _: str) -> str:
        return "exit"

    cmd_quit = cmd_exit

    def cmd_attach(self, rest: str) -> None:
        name = rest or self._pick_source()
        if not name:
            return
        self.out(self.core.attach(self.channel, name))

    def _pick_source(self) -> str | None:
        names = [s.name for s in self.core.source_list(self.channel) if not s.attached]
        if not names:
            self.out("No sources to attach. Load one first: membot load directory --name NAME --input-files FILE")
            return None
        for n, name in enumerate(names, start=1):
            self.out(f"  {n}. {name}")
        if not self.interactive:
            self.out("Give the source's name: /attach NAME")
            return None
        choice = click.prompt("Attach which source (number or name)", default="1")
        if choice.isdigit() and 1 <= int(choice) <= len(names):
            return names[int(choice) - 1]
        return choice

    def cmd_detach(self, rest: str) -> None:
        if not rest:
            raise UserError("Usage: /detach SOURCE")
        self.out(self.core.detach(self.channel, rest))

    def cmd_sources(self, rest: str) -> None:
        answer = self.core.sources_command(self.channel, rest, admin=True)  # the operator's own terminal
        if answer.listing is None:
            self.out(answer.text)
            return
        if not answer.listing:
            self.out("No sources loaded.")
        for s in answer.listing:
            mark = "attached" if s.attached else ""
            self.out(f"  {s.name}  {s.passages} passages  {mark}".rstrip())

    def cmd_memory(self, _: str) -> None:
        memory_view(self.service.memory(self.agent_id), self.out)

    def cmd_search(self, rest: str) -> None:
        if not rest:
            raise UserError("Usage: /search QUERY")
        self.out(format_page(self.service.search_archival(self.agent_id, rest)))

    def cmd_pop(self, _: str) -> None:
        removed = self.service.pop(self.agent_id)
        self.out(f"Removed the last exchange ({removed} messages)." if removed else "Nothing to remove.")

    def cmd_retry(self, _: str) -> None:
        last = self.service.last_user_text(self.agent_id)
        if last is None:
            raise UserError("There is no message to retry yet.")
        self.service.pop(self.agent_id)
        self.say(last.content)

    def cmd_rethink(self, rest: str) -> None:
        if not rest:
            raise UserError("Usage: /rethink NEW THOUGHT")
        self.service.rethink(self.agent_id, rest)
        self.out("Replaced the last inner thought.")

    def cmd_rewrite(self, rest: str) -> None:
        if not rest:
            raise UserError("Usage: /rewrite NEW REPLY")
        self.service.rewrite(self.agent_id, rest)
        self.out("Replaced the last reply.")

    def cmd_schedule(self, rest: str) -> None:
        if self.schedules is None:
            raise UserError("Schedules are not available here.")
        answer = run_schedule_command(self.schedules, self.agent_id, rest, author=self.speaker.name)
        self.out(schedule_markdown(answer))

    def deliver(self, target: Target, text: str) -> None:
        """The "local" delivery: a timed event's replies are printed (from a worker thread)."""
        self.show(TurnEvent("reply", text if text.startswith("⏰") else f"⏰ {text}"))

