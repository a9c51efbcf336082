"""Slack message events as one platform-neutral shape: who wrote what, where, and whether it is for the bot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent import Channel

# Message subtypes that are something a person said; edits, joins, deletions and bot posts are not.
SPOKEN = {None, "", "file_share", "thread_broadcast"}


def channel_for(team: str, channel: str, user: str) -> Channel:
    """A DM (channel id D...) is its person's own agent; any other channel's agent is shared by its members."""
    return Channel(scope=f"slack:{team}", id=channel, private_to=user if channel.startswith("D") else "")


@dataclass(frozen=True)
class SlackMessage:
    team: str
    channel: str
    user: str
    text: str
    ts: str
    thread_ts: str = ""
    mentioned: bool = False
    files: tuple[dict[str, Any], ...] = ()
    channel_type: str = ""  # im, mpim, group (a private channel), channel

    @property
    def place(self) -> Channel:
        return channel_for(self.team, self.channel, self.user)

    @property
    def is_dm(self) -> bool:
        return self.channel.startswith("D")

    @property
    def in_thread(self) -> bool:
        return bool(self.thread_ts) and self.thread_ts != self.ts

    @property
    def root(self) -> str:
        """The thread this message belongs to (its own ts when it starts one)."""
        return self.thread_ts or self.ts

    @property
    def reply_thread(self) -> str:
        """Where answers go: the message's thread; in a DM, the conversation itself unless it is in a thread."""
        return self.thread_ts if self.is_dm else self.root


def parse_message(event: dict[str, Any], team: str, bot_user_id: str) -> SlackMessage | None:
    """The message in an app_mention or message event, or None when nobody said anything to consider."""
    user = event.get("user") or ""
    if event.get("subtype") not in SPOKEN or event.get("bot_id") or not user or user == bot_user_id:
        return None
    text = str(event.get("text") or "")
    mentioned = event.get("type") == "app_mention" or bool(bot_user_id and f"<@{bot_user_id}" in text)
    return SlackMessage(team=team, channel=str(event.get("channel") or ""), user=user, text=text,
                        ts=str(event.get("ts") or ""), thread_ts=str(event.get("thread_ts") or ""),
                        mentioned=mentioned, files=tuple(event.get("files") or ()),
                        channel_type=str(event.get("channel_type") or ""))
