"""Whether a Slack conversation is private (a DM, a group DM, a private channel): asked of conversations.info
once and cached for a while, forgotten when Slack says the channel changed. A channel whose privacy cannot be
told counts as private, so an upload there never becomes visible to the whole workspace by mistake."""

from __future__ import annotations

import logging
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from adapters.slack.recent import Recent

log = logging.getLogger(__name__)
PRIVATE_TYPES = {"im", "mpim", "group"}  # a message event's channel_type; "group" is a private channel


class Privacy:
    def __init__(self, ttl: float = 600.0) -> None:
        self.ttl = ttl
        self._known: Recent[tuple[bool, float]] = Recent(5_000)

    def is_private(self, client: WebClient, channel: str, channel_type: str = "") -> bool:
        if channel.startswith("D") or channel_type in PRIVATE_TYPES:
            return True
        cached = self._known.get(channel)
        if cached is not None and time.monotonic() - cached[1] < self.ttl:
            return cached[0]
        try:
            info = client.conversations_info(channel=channel)["channel"]
        except SlackApiError as exc:  # missing channels:read/groups:read: keep the upload in its channel
            log.warning("conversations.info for %s failed (%s): treating it as private", channel,
                        exc.response.get("error"))
            return True
        private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
        self._known.put(channel, (private, time.monotonic()))
        return private

    def forget(self, channel: str) -> None:
        """A channel was renamed, archived, converted to private...: ask again next time."""
        self._known.put(channel, (True, float("-inf")))
