"""What a message's handling reads of the Slack adapter (adapters/slack/bot.py's SlackBot provides it), so the
handlers need not import the bot that schedules them."""

from __future__ import annotations

from typing import Protocol

from adapters.slack.people import People
from adapters.slack.privacy import Privacy
from adapters.slack.seen import SeenKeys
from adapters.slack.threads import Threads
from agent import ChatCore


class SlackState(Protocol):
    core: ChatCore
    max_file_bytes: int
    file_origins: tuple[str, ...]  # where the bot token may fetch uploads from
    seen: SeenKeys  # events, messages and files already handled (in SQL, shared by every process)
    people: People
    privacy: Privacy  # whether a conversation is private (conversations.info, cached)
    threads: Threads
    stream_interval: float  # seconds between edits of a reply shown while it grows; 0: post replies when done
