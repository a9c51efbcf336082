"""Running the Discord bot: builds it from the container and connects, with one-line errors for the usual
setup mistakes (no token, a rejected token, the Message Content intent not enabled)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

from adapters.discord.bot import MembotBot, NotInServer
from adapters.discord.delivery import make_delivery
from agent.errors import ConfigError
from bot.container import Container
from bot.logsafe import scrub_logs
from bot.process import sigterm_interrupts
from bot.settings import reveal

NO_TOKEN = ("No Discord bot token. Set DISCORD_TOKEN (Discord Developer Portal > your application > Bot > "
            "Reset Token), or add discord_token to config.toml.")
BAD_TOKEN = "Discord rejected DISCORD_TOKEN; copy the bot token again from the Developer Portal (Bot > Reset Token)."
NO_INTENT = ("Discord refused the Message Content intent: enable it under Developer Portal > your application > "
             "Bot > Privileged Gateway Intents > Message Content Intent, then start again.")

log = logging.getLogger("membot.discord")
DISCORD_EDIT_SECONDS = 1.2  # message edits: 5 per 5 s per channel, with room for the other posts


def not_in_server(guild_id: int) -> str:
    return (f"DISCORD_GUILD_ID is {guild_id}, a server this bot is not in: invite the bot there (Developer Portal "
            "> OAuth2 > URL Generator, scopes bot and applications.commands), or fix or unset DISCORD_GUILD_ID.")


def sync_ignored(guild_id: int) -> str:
    return (f"--sync ignored: DISCORD_GUILD_ID is set, so the slash commands sync to server {guild_id} at every "
            "start; unset DISCORD_GUILD_ID to register them globally.")


def build_bot(container: Container, sync: bool = False, **options: Any) -> MembotBot:
    """The bot on the container's services; `options` go to discord.py (tests shorten its start-up waits)."""
    s = container.settings
    container.require_model()  # fails here, before connecting, when no chat model is configured
    container.warm_up()  # the model and the passage store start while it connects
    guild = int(s.discord_guild_id) if s.discord_guild_id else None
    if sync and guild is not None:
        log.warning(sync_ignored(guild))
    streams = s.llm_stream == "on" and s.stream_replies == "on"
    return MembotBot(container.chat, int(s.max_file_mb * 1_000_000), sync_guild=guild,
                     sync_global=sync and guild is None, stream_interval=DISCORD_EDIT_SECONDS if streams else 0.0,
                     **options)


async def run_discord(container: Container, sync: bool = False, **options: Any) -> None:
    """Connect and serve until the bot is closed. discord.py reconnects and waits out rate limits by itself."""
    token = reveal(container.settings.discord_token)
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
    except NotInServer as exc:
        raise ConfigError(not_in_server(exc.guild_id)) from None
    finally:
        container.deliveries.unregister("discord")


def serve_discord(container: Container, sync: bool = False) -> None:
    discord.utils.setup_logging()
    sigterm_interrupts()  # SIGTERM stops the bot the way Ctrl-C does
    scrub_logs(container.settings)
    try:
        asyncio.run(run_discord(container, sync))
    except KeyboardInterrupt:
        pass
