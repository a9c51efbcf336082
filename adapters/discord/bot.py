"""The Discord bot: a commands.Bot whose message listener and slash commands translate to ChatCore calls."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.commands import register_commands
from adapters.discord.conversation import Conversations
from adapters.discord.format import NO_PINGS
from adapters.discord.menus import register_menus
from adapters.discord.replies import error_text
from adapters.discord.tracking import Inflight
from agent import ChatCore

log = logging.getLogger(__name__)


def intents() -> discord.Intents:
    wanted = discord.Intents.default()
    wanted.message_content = True  # privileged: enable it for the bot in the Developer Portal
    return wanted


class NotInServer(Exception):
    """The configured server refused the command sync: the bot is not a member (or the id is wrong)."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(guild_id)
        self.guild_id = guild_id


class MembotBot(commands.Bot):
    """`sync_guild`: copy the slash commands to this server and sync them there at every start (instant, cheap).
    `sync_global`: sync them globally once at start (explicit: Discord limits and slowly propagates these)."""

    def __init__(self, core: ChatCore, max_file_bytes: int, sync_guild: int | None = None,
                 sync_global: bool = False, drain_timeout: float = 60.0, stream_interval: float = 0.0,
                 **options: Any) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=intents(), allowed_mentions=NO_PINGS,
                         help_command=None, **options)
        self.conversations = Conversations(self, core, max_file_bytes, stream_interval)
        self.sync_guild = sync_guild
        self.sync_global = sync_global
        self.drain_timeout = drain_timeout
        self.inflight = Inflight()
        register_commands(self.tree, core, self.inflight)
        register_menus(self.tree, core, self.inflight)
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        if self.sync_guild is not None:
            guild = discord.Object(self.sync_guild)
            self.tree.copy_global_to(guild=guild)
            try:
                synced = await self.tree.sync(guild=guild)
            except (discord.Forbidden, discord.NotFound) as exc:
                raise NotInServer(self.sync_guild) from exc
            log.info("synced %d slash commands to server %s", len(synced), self.sync_guild)
        if self.sync_global:
            synced = await self.tree.sync()
            log.info("synced %d slash commands globally (Discord may take up to an hour to show them)", len(synced))

    async def on_message(self, message: discord.Message) -> None:
        # Other bots (and this one) are never answered; a replayed event is answered once (the inbox's key).
        if message.author.bot:
            return
        async with self.inflight:
            await self.conversations.handle(message)

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        text = error_text(getattr(error, "original", error))
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
            else:
                await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
        except discord.HTTPException:
            log.warning("could not report a slash command error to Discord")

    async def close(self) -> None:
        """Let turns already started post their replies before the connection closes."""
        try:
            await asyncio.wait_for(self.inflight.idle(), self.drain_timeout)
        except asyncio.TimeoutError:
            log.warning("closing with turns still running after %.0f s", self.drain_timeout)
        await super().close()
