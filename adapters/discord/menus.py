"""Message context-menu commands (right-click a message > Apps): "Ask membot about this" asks the channel's agent
about the message, "Save to memory" keeps it in the agent's archival memory."""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands

from adapters.discord.format import NO_PINGS, pieces
from adapters.discord.replies import error_text
from adapters.discord.tracking import Inflight
from adapters.discord.where import channel_for, speaker_for
from agent import ChatCore, save_to_archival

ASK = "Ask membot about this"
SAVE = "Save to memory"
QUOTE_LIMIT = 3000


def register_menus(tree: app_commands.CommandTree[discord.Client], core: ChatCore, inflight: Inflight) -> None:
    async def followup(interaction: discord.Interaction, text: str, ephemeral: bool) -> None:
        for piece in pieces(text):
            await interaction.followup.send(piece, ephemeral=ephemeral, allowed_mentions=NO_PINGS)

    async def ask(interaction: discord.Interaction, message: discord.Message) -> None:
        async with inflight:
            await interaction.response.defer(thinking=True)
            channel, thread = channel_for(interaction.channel, interaction.guild_id, interaction.user.id)
            try:
                future = core.submit(channel, speaker_for(interaction.user), question(message), thread)
                result = await asyncio.wrap_future(future)
                texts = result.replies or [result.notice or "The agent did not send a reply this time."]
            except Exception as exc:
                texts = [error_text(exc)]
            for text in texts:
                await followup(interaction, text, ephemeral=False)

    async def save(interaction: discord.Interaction, message: discord.Message) -> None:
        async with inflight:
            await interaction.response.defer(ephemeral=True, thinking=True)
            channel, _ = channel_for(interaction.channel, interaction.guild_id, interaction.user.id)
            try:
                text = await asyncio.to_thread(save_to_archival, core, channel, message.content,
                                               message.author.display_name)
            except Exception as exc:
                text = error_text(exc)
            await followup(interaction, text, ephemeral=True)

    tree.add_command(app_commands.ContextMenu(name=ASK, callback=ask))
    tree.add_command(app_commands.ContextMenu(name=SAVE, callback=save))


def question(message: discord.Message) -> str:
    """What the agent reads for "Ask membot about this": the message quoted, with who wrote it."""
    quoted = "\n".join(f"> {line}" for line in message.content[:QUOTE_LIMIT].splitlines()) or "> (no text)"
    return f"What can you tell me about this message from {message.author.display_name}?\n{quoted}"
