"""Which threads the bot takes part in, so follow-ups there need no mention: remembered when the bot posts in a
thread, otherwise asked of conversations.replies once per thread (this also covers threads from before a
restart)."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from adapters.slack.recent import Recent

log = logging.getLogger(__name__)


class Threads:
    def __init__(self) -> None:
        self._joined: Recent[bool] = Recent(20_000)

    def joined(self, channel: str, thread_ts: str) -> None:
        self._joined.put((channel, thread_ts), True)

    def bot_in(self, client: WebClient, channel: str, thread_ts: str, bot_user_id: str) -> bool:
        known = self._joined.get((channel, thread_ts))
        if known is not None:
            return known
        try:
            replies = client.conversations_replies(channel=channel, ts=thread_ts, limit=1000)
            found = any(m.get("user") == bot_user_id for m in replies.get("messages") or [])
        except SlackApiError as exc:
            log.warning("conversations.replies in %s failed: %s", channel, exc.response.get("error"))
            return False
        self._joined.put((channel, thread_ts), found)
        return found
