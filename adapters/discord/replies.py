"""Posting text to Discord: in order, in pieces, without pings, and never twice for one answer."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import discord

from adapters import report
from adapters.discord.format import NO_PINGS, pieces

log = logging.getLogger(__name__)


def nonce(key: str) -> str:
    """A per-piece nonce (at most 25 characters). Sent with enforce_nonce, Discord answers a repeated request
    with the message it already created, so a retried request never posts a piece twice."""
    return hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


async def send_text(target: discord.abc.Messageable, text: str, key: str,
                    reply_to: discord.Message | None = None) -> list[discord.Message]:
    """Post `text` to a channel, thread or DM as one or more messages; `key` names this answer uniquely.
    `reply_to`: the first message is a reply to that question (its author not pinged)."""
    sent = []
    for n, piece in enumerate(pieces(text)):
        reply: dict[str, Any] = {} if n or reply_to is None else {
            "reference": reply_to.to_reference(fail_if_not_exists=False), "mention_author": False}
        sent.append(await target.send(piece, allowed_mentions=NO_PINGS, nonce=nonce(f"{key}:{n}"), **reply))
    return sent


def error_text(exc: BaseException) -> str:
    """What a person sees for a failure: a UserError's own text; anything else is logged under an error id."""
    return report.error_text(exc, "a Discord request failed", log)
