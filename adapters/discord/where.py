"""Who and where, in platform-neutral terms: a Discord channel, thread or DM as a ChatCore Channel, a user as a
Speaker, a message's text as the agent reads it."""

from __future__ import annotations

import re

import discord

from agent import Channel, Speaker

DM_SCOPE = "discord:dm"


def scope_for(guild_id: int) -> str:
    return f"discord:{guild_id}"


def channel_for(place: object, guild_id: int | None, user_id: int) -> tuple[Channel, str]:
    """The agent's channel and the conversation's thread id ("" outside threads). A thread shares its parent
    channel's agent; a DM is the person's own agent."""
    if guild_id is None:
        return Channel(DM_SCOPE, str(getattr(place, "id", user_id)), private_to=str(user_id), private=True,
                       shareable=False), ""
    if isinstance(place, discord.Thread):
        return Channel(scope_for(guild_id), str(place.parent_id), private=is_private(place)), str(place.id)
    return Channel(scope_for(guild_id), str(getattr(place, "id", 0)), private=is_private(place)), ""


def is_private(place: object) -> bool:
    """Whether a server channel is hidden from some members: the default role (@everyone) cannot view it, by the
    permission overwrites in discord.py's guild cache (kept current by CHANNEL_UPDATE events). A thread goes by
    its parent channel; a private thread is private. What cannot be told counts as private."""
    if isinstance(place, discord.Thread):
        if place.type is discord.ChannelType.private_thread:
            return True
        place = place.parent
    if not isinstance(place, discord.abc.GuildChannel):
        return True
    return not place.permissions_for(place.guild.default_role).view_channel


def speaker_for(user: discord.abc.User) -> Speaker:
    return Speaker(str(user.id), user.display_name)


def mentions_bot(message: discord.Message, bot_id: int) -> bool:
    """A mention of the bot itself or of its own managed role (what Discord inserts for @membot at times)."""
    if any(user.id == bot_id for user in message.mentions):
        return True
    return any(role.tags is not None and role.tags.bot_id == bot_id for role in message.role_mentions)


def replies_to(message: discord.Message, bot_id: int) -> bool:
    """A reply to one of the bot's own messages (with the ping off, the bot is not in its mentions)."""
    ref = message.reference
    if ref is None:
        return False
    replied = ref.resolved if isinstance(ref.resolved, discord.Message) else ref.cached_message
    return replied is not None and replied.author.id == bot_id


def prompt_text(message: discord.Message, bot_id: int) -> str:
    """The message as the agent should read it: the bot's mention removed, other mentions as @names."""
    text = re.sub(rf" ?<@!?{bot_id}>", "", message.content)
    for user in message.mentions:
        text = re.sub(rf"<@!?{user.id}>", f"@{user.display_name}", text)
    for role in message.role_mentions:
        if role.tags is not None and role.tags.bot_id == bot_id:
            text = re.sub(rf" ?<@&{role.id}>", "", text)
        text = text.replace(f"<@&{role.id}>", "@" + role.name.lstrip("@"))
    return text.strip()
