"""Posting a schedule's replies to Discord: called from the scheduler's thread, run on the bot's event loop."""

from __future__ import annotations

import asyncio
import uuid

import discord

from adapters.discord.replies import send_text
from agent import Deliver, DeliveryError, Target

POST_TIMEOUT = 60.0


def make_delivery(bot: discord.Client) -> Deliver:
    def deliver(target: Target, text: str) -> None:
        future = asyncio.run_coroutine_threadsafe(_post(bot, target, text), bot.loop)
        future.result(POST_TIMEOUT)

    return deliver


async def _post(bot: discord.Client, target: Target, text: str) -> None:
    place = await _messageable(bot, target)
    await send_text(place, text, key=f"schedule:{uuid.uuid4().hex}")


async def _messageable(bot: discord.Client, target: Target) -> discord.abc.Messageable:
    ident = target.thread or target.channel
    try:
        if ident:
            found = bot.get_channel(int(ident)) or await bot.fetch_channel(int(ident))
            if isinstance(found, discord.abc.Messageable):
                return found
            raise DeliveryError(f"Discord channel {ident} cannot take messages.")
        if target.user:
            user = bot.get_user(int(target.user)) or await bot.fetch_user(int(target.user))
            return await user.create_dm()
    except (discord.NotFound, discord.Forbidden) as exc:
        raise DeliveryError(f"Cannot post to Discord {ident or target.user}: {exc.text}") from exc
    raise DeliveryError(f"A schedule for {target.scope} names no channel or person.")
