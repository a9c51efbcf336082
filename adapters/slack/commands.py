"""Slash commands and the /attach picker: what each answers, as response_url messages. Answers are ephemeral
unless they change the channel's agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.help import help_text, is_help, usage
from adapters.listing import answer_markdown, memory_markdown, schedule_markdown
from adapters.slack.format import pieces
from agent import Channel, ChatCore, NotFound, UserError

Response = dict[str, Any]
PICK_ACTION = "membot_attach_pick"
COMMANDS = ("/attach", "/detach", "/sources", "/memory", "/load", "/schedule", "/membot")
HELP_COMMAND = "/membot help"
CHANGES_SCHEDULES = ("add", "cancel", "rm", "remove", "delete", "tz", "timezone", "zone")
MAX_OPTIONS = 100  # Slack's limit for a select's options
NO_SOURCES = ("No sources in this workspace yet. Upload a file (PDF, text, Markdown, .docx, .html) to a channel "
              "I am in and I will load it; then `/attach` it anywhere.")


def load_help(max_mb: float) -> str:
    return ("*Loading files*: upload a file to a channel I am in (drag it into the message box, or use +). I load "
            "it as a source of this workspace named after the file, attach it to that channel's agent, and answer "
            f"in the file's thread. PDF, text, Markdown, .docx and .html files up to {max_mb:g} MB load; the same "
            "file twice adds nothing. In another channel, `/attach NAME` gives its agent the same source.")


def ephemeral(text: str) -> list[Response]:
    return [{"response_type": "ephemeral", "text": p} for p in pieces(text)][:5]  # response_url: 5 uses


def in_channel(text: str) -> list[Response]:
    return [{"response_type": "in_channel", "text": p} for p in pieces(text)][:5]


def run_command(core: ChatCore, name: str, text: str, place: Channel, max_mb: float,
                author: str = "", user: str = "", is_admin: Callable[[], bool] = lambda: False) -> list[Response]:
    args = text.split()
    if name == "/membot":
        return ephemeral(slack_help())
    if is_help(text):
        return ephemeral(usage(name))
    if name == "/load":
        return ephemeral(load_help(max_mb))
    if name == "/schedule":
        return schedule(core, place, text, author)
    if name == "/attach" and not args:
        return picker(core, place)
    if name in ("/attach", "/detach") and len(args) == 1:
        return attach(core, place, args[0]) if name == "/attach" else detach(core, place, args[0])
    if name == "/sources":
        return sources(core, place, text, user, is_admin)
    if name == "/memory" and not args:
        return ephemeral(memory_markdown(*core.memory(place)))
    return ephemeral(usage(name))


def slack_help() -> str:
    return help_text(COMMANDS, "**Give it files**: upload a file to a channel I am in (or to a thread there) and I "
                               "load it as a data source of this workspace and attach it to that channel's agent.")


def attach(core: ChatCore, place: Channel, source: str) -> list[Response]:
    try:
        return in_channel(core.attach(place, source))
    except NotFound as exc:
        return ephemeral(str(exc) if core.source_names(place) else NO_SOURCES)


def sources(core: ChatCore, place: Channel, text: str, user: str, is_admin: Callable[[], bool]) -> list[Response]:
    """A listing, a confirmation question and a refusal are for the asker; a share or delete is shown to all."""
    changes = text.split()[:1] in (["share"], ["delete"])
    try:
        answer = core.sources_command(place, text, user, admin=changes and is_admin())
    except UserError as exc:
        return ephemeral(str(exc))
    return in_channel(answer.text) if answer.changed else ephemeral(answer_markdown(answer))


def schedule(core: ChatCore, place: Channel, text: str, author: str) -> list[Response]:
    """Listing is ephemeral; a change to the channel's schedules is shown to the channel."""
    verb = text.strip().split(" ", 1)[0].lower()
    try:
        answer = schedule_markdown(core.schedule(place, text, author))
    except UserError as exc:
        return ephemeral(str(exc))
    changed = verb in CHANGES_SCHEDULES and (verb not in ("tz", "timezone", "zone") or len(text.split()) > 1)
    return in_channel(answer) if changed else ephemeral(answer)


def detach(core: ChatCore, place: Channel, source: str) -> list[Response]:
    try:
        return in_channel(core.detach(place, source))
    except NotFound as exc:
        return ephemeral(str(exc))


def picked(core: ChatCore, place: Channel, source: str) -> list[Response]:
    """A source chosen in the picker: the picker goes, the outcome is shown."""
    answer = attach(core, place, source)
    if answer[0]["response_type"] == "in_channel":
        return [{"delete_original": True}, *answer]
    return [{"replace_original": True, **answer[0]}]


def picker(core: ChatCore, place: Channel) -> list[Response]:
    """A typeahead select: Slack asks `suggestions` for the options as the person types."""
    if not core.source_names(place):
        return ephemeral(NO_SOURCES)
    blocks: list[dict[str, Any]] = [{
        "type": "section",
        "text": {"type": "mrkdwn", "text": "Attach a source to this channel's agent:"},
        "accessory": {"type": "external_select", "action_id": PICK_ACTION, "min_query_length": 0,
                      "placeholder": {"type": "plain_text", "text": "Type to find a source"}},
    }]
    return [{"response_type": "ephemeral", "text": "Attach a source to this channel's agent", "blocks": blocks}]


def suggestions(core: ChatCore, place: Channel, typed: str) -> list[dict[str, Any]]:
    """The picker's options for what was typed: names starting with it first, then names containing it."""
    typed = typed.strip().lower()
    names = core.source_names(place)
    ranked = sorted((n for n in names if typed in n.lower()), key=lambda n: (not n.lower().startswith(typed), n))
    return [{"text": {"type": "plain_text", "text": n[:75]}, "value": n} for n in ranked[:MAX_OPTIONS]]
