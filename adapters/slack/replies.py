"""Posting to Slack: replies split to Slack's limit (timed events' too), the "working" reaction, and failures
logged with an id."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from adapters.report import report
from adapters.slack.format import pieces
from agent import DeliveryError, Target

log = logging.getLogger(__name__)

WORKING = "hourglass_flowing_sand"


def apology(what: str, exc: BaseException | None = None) -> str:
    """Log the exception (or the one being handled) with a new error id; the text a person sees instead."""
    return report(what, exc, log)


def post(client: WebClient, channel: str, thread_ts: str, texts: Iterable[str]) -> bool:
    """Post each Markdown text as mrkdwn messages in the thread; False (and logged with an id) if Slack refused."""
    for text in texts:
        for piece in pieces(text):
            try:
                client.chat_postMessage(channel=channel, text=piece, thread_ts=thread_ts or None, unfurl_links=False,
                                        unfurl_media=False)
            except (SlackApiError, OSError) as exc:
                error_id = uuid.uuid4().hex[:8]
                reason = exc.response.get("error") if isinstance(exc, SlackApiError) else exc
                log.error("error id %s: chat.postMessage to %s (thread %s) failed: %s; the agent's reply is kept "
                          "in its history", error_id, channel, thread_ts or "-", reason)
                return False
    return True


def post_one(client: WebClient, channel: str, thread_ts: str, mrkdwn: str) -> str:
    """Post one mrkdwn message (already within the limit); its ts, to edit it. Raises when Slack refuses."""
    answer = client.chat_postMessage(channel=channel, text=mrkdwn, thread_ts=thread_ts or None, unfurl_links=False,
                                     unfurl_media=False)
    return str(answer["ts"])


@contextmanager
def working(client: WebClient, channel: str, ts: str) -> Iterator[None]:
    """Show an hourglass on the person's message while the bot works on it."""
    _react(client, "reactions_add", channel, ts)
    try:
        yield
    finally:
        _react(client, "reactions_remove", channel, ts)


def _react(client: WebClient, method: str, channel: str, ts: str) -> None:
    try:
        getattr(client, method)(channel=channel, timestamp=ts, name=WORKING)
    except (SlackApiError, OSError) as exc:  # a missing reaction is cosmetic: never fail the reply for it
        log.debug("%s failed: %s", method, exc)


def deliver_scheduled(client: WebClient, scope: str, target: Target, text: str) -> None:
    """Post a timed event's reply: in its channel (or thread), or to a person's DM with the app."""
    if target.scope != scope:
        raise DeliveryError(f"This process serves {scope}, not {target.scope}; run `membot serve slack` there.")
    if not post(client, target.channel or target.user, target.thread, [text]):
        raise DeliveryError(f"Slack refused the message for {target.channel or target.user} (see the log).")
