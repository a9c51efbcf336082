"""Running the Discord bot: builds it from the container and connects, with one-line errors for the usual
setup mistakes (no token, a rejected token, the Message Content intent not enabled)."""

from __future__ import annotations

import asyncio
from typing import Any

import discord

from adapters.discord.bot import MembotBot
from adapters.discord.delivery import make_delivery
from agent.chat import ChatCore
from agent.errors import ConfigError
from bot.container import Container

NO_TOKEN = ("No Discord bot token. Set DISCORD_TOKEN (Discord Developer Portal > your application > Bot > "
            "Reset Token), or add discord_token to config.toml.")
BAD_TOKEN = "Discord rejected DISCORD_TOKEN; copy the bot token again from the Developer Portal (Bot > Reset Token)."
NO_INTENT = ("Discord refused the Message Content intent: enable it under Developer Portal > your application > "
             "Bot > Privileged Gateway Intents > Message Content Intent, then start again.")


def build_bot(container: Container, sync: bool = False, **options: Any) -> MembotBot:
    """The bot on the container's services; `options` go to discord.py (tests shorten its start-up waits)."""
    s = container.settings
    _ = container.runner  # fails here, before connecting, without a chat model or with too small a window
    core = ChatCore(container.agents, container.loader, container.catalog, schedules=container.schedules)
    guild = int(s.discord_guild_id) if s.discord_guild_id else None
    return MembotBot(core, int(s.max_file_mb * 1_000_000), sync_guild=guild, sync_global=sync and guild is None,
                     **options)


async def run_discord(container: Container, sync: bool = False, **options: Any) -> None:
    """Connect and serve until the bot is closed. discord.py reconnects and waits out rate limits by itself."""
    token = container.settings.discord_token
    if not token:
        raise ConfigError(NO_TOKEN)
    bot = build_bot(container, sync, **options)  # fails here, before connecting, when no model is configured
    container.deliveries.register("discord", make_delivery(bot))
    container.start_scheduler()
    try:
        async with bot:
            await bot.start(token)
    except discord.PrivilegedIntentsRequired as exc:
        raise ConfigError(NO_INTENT) from exc
    except discord.LoginFailure as exc:
        raise ConfigError(BAD_TOKEN) from exc
    finally:
        container.deliveries.unregister("discord")


def serve_discord(container: Container, sync: bool = False) -> None:
    discord.utils.setup_logging()
    try:
        asyncio.run(run_discord(container, sync))
    except KeyboardInterrupt:
        pass
