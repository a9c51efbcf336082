"""Discord's message limits in one place: 2,000-character pieces and mentions that never ping."""

from __future__ import annotations

import discord

from adapters.text import split_message

MESSAGE_LIMIT = 2000
THREAD_NAME_LIMIT = 100
NO_PINGS = discord.AllowedMentions.none()


def pieces(text: str) -> list[str]:
    """A reply as Discord messages, in order: mentions defused, split without breaking code blocks.

    escape_mentions puts a zero-width space after the "@" of @everyone, @here and <@id>, <@!id>, <@&id>, so they
    do not render as mentions even where a client ignored allowed_mentions."""
    return split_message(discord.utils.escape_mentions(text), MESSAGE_LIMIT)


def thread_name(text: str, fallback: str) -> str:
    """A thread title from the first line of the question that opened it."""
    first = " ".join(text.split("\n", 1)[0].split())
    name = first or fallback
    return name if len(name) <= THREAD_NAME_LIMIT else name[:THREAD_NAME_LIMIT - 1].rstrip() + "…"
