"""What membot's chat commands do, as data: one entry a command, with its usage and examples, rendered as the
help text and per-command usage on both platforms (Slack adds /load; Discord uploads need no command)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HELP_WORDS = ("help", "-h", "--help", "?")


@dataclass(frozen=True)
class Command:
    name: str  # without the slash
    args: str  # e.g. "[NAME]"
    what: str
    examples: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command("attach", "[NAME]", "attach one of this workspace's data sources to this channel's agent; without a "
            "name, pick one from a list", ("/attach release_notes",)),
    Command("detach", "NAME", "detach a data source from this channel's agent", ("/detach release_notes",)),
    Command("sources", "[share NAME | delete NAME [confirm]]", "list the data sources this channel can use and "
            "mark the ones attached here; share one uploaded here with the whole workspace, or delete one (its "
            "uploader or an admin)", ("/sources", "/sources share release_notes", "/sources delete old_notes")),
    Command("memory", "", "show what this channel's agent remembers (only to you)", ("/memory",)),
    Command("schedule", "list | add WHEN WHAT | cancel ID | tz [ZONE]", "reminders and repeating prompts",
            ("/schedule add friday 10:00 post the release notes", "/schedule add every monday 9:00 stand-up",
             "/schedule cancel 3", "/schedule tz Europe/Berlin")),
    Command("load", "", "how to load a file as a data source", ("/load",)),
)
BY_NAME = {c.name: c for c in COMMANDS}


def is_help(text: str) -> bool:
    return text.strip().lower() in HELP_WORDS


def usage(name: str) -> str:
    """One command's usage line with its examples, e.g. for `/attach help`."""
    command = BY_NAME[name.lstrip("/")]
    call = f"/{command.name} {command.args}".strip()
    examples = ", ".join(f"`{e}`" for e in command.examples)
    return f"Usage: `{call}`: {command.what}." + (f" For example: {examples}." if examples else "")


def help_text(names: Iterable[str], upload_hint: str = "") -> str:
    """The help: how to talk to the bot, then each of `names` (the platform's commands) with an example."""
    lines = ["**membot** gives this channel an agent with a memory of its own.",
             "**Talk to it**: mention me with a question (in a thread I am in, no mention is needed; in a direct "
             "message, just write).",
             upload_hint or "**Give it files**: upload a file to a channel I am in and I load it as a data source.",
             "**Commands**:"]
    for name in names:
        command = BY_NAME.get(name.lstrip("/"))
        if command is not None:
            call = f"/{command.name} {command.args}".strip()
            example = f" (e.g. `{command.examples[0]}`)" if command.examples and command.args else ""
            lines.append(f"- `{call}`: {command.what}{example}")
    lines.append("Add `help` to any command for its usage, e.g. `/schedule help`.")
    return "\n".join(lines)


def greeting(help_command: str) -> str:
    """The answer to a mention with nothing else in it."""
    return ("Hi, I'm membot, this channel's agent; I remember what we talk about here. Ask me something after the "
            f"mention, upload a file for me to read, or run `{help_command}` to see my commands.")
