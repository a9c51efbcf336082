"""Which threads the bot takes part in, so follow-ups there need no mention: recorded when the bot posts in a
thread, otherwise asked of conversations.replies once per thread (this also covers threads from before a
restart). Kept in the shared ledger, so a follow-up reaching another process is answered too."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from agent import Ledger

log = logging.getLogger(__name__)


class Threads:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def joined(self, team: str, channel: str, thread_ts: str) -> None:
        self.ledger.joined(_key(team, channel, thread_ts))

    def bot_in(self, client: WebClient, team: str, channel: str, thread_ts: str, bot_user_id: str) -> bool:
        key = _key(team, channel, thread_ts)
        known = self.ledger.in_thread(key)
        if known:
            return True
        if known is not None:  # asked before and the bot was not there; it can have posted since only through us
            return False
        try:
            replies = client.conversations_replies(channel=channel, ts=thread_ts, limit=1000)
            found = any(m.get("user") == bot_user_id for m in replies.get("messages") or [])
        except SlackApiError as exc:
            log.warning("conversations.replies in %s failed: %s", channel, exc.response.get("error"))
            return False
        self.ledger.checked(key, found)
        return found


def _key(team: str, channel: str, thread_ts: str) -> str:
    return f"slack:{team}:{channel}:{thread_ts}"
