"""Slash commands: /attach (with autocomplete), /detach, /sources and /memory. Each defers at once (Discord
wants an answer within 3 seconds), runs the ChatCore call in a worker thread, then follows up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import discord
from discord import app_commands

from adapters.discord.format import NO_PINGS, pieces
from adapters.discord.panel import PanelButtons, panel_embed
from adapters.discord.replies import error_text
from adapters.discord.tracking import Inflight
from adapters.discord.where import channel_for
from adapters.help import help_text, is_help, usage
from adapters.listing import answer_markdown, schedule_markdown
from agent import Channel, ChatCore, channel_home

DISCORD_COMMANDS = ("attach", "detach", "sources", "memory", "schedule")
UPLOAD_HINT = ("**Give it files**: attach a file to a message that mentions me in a server channel and I load it "
               "as a data source of this server and attach it to that channel's agent.")
Shown = tuple[str, bool]  # an answer and whether the channel sees it
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
CHOICE_LIMIT = 100


def channel_of(interaction: discord.Interaction) -> Channel:
    return channel_for(interaction.channel, interaction.guild_id, interaction.user.id)[0]


def register_commands(tree: app_commands.CommandTree[discord.Client], core: ChatCore, inflight: Inflight) -> None:
    async def answer(interaction: discord.Interaction, work: Callable[[Channel], str | Shown],
                     ephemeral: bool = False) -> None:
        """Defer (Discord wants an answer within 3 s), run `work` in a thread, follow up with what it said. An
        error is only for the asker; `work` may return (text, public) to choose after the fact."""
        async with inflight:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
            try:
                done = await asyncio.to_thread(work, channel_of(interaction))
                text, public = done if isinstance(done, tuple) else (done, not ephemeral)
            except Exception as exc:
                text, public = error_text(exc), False
            if public == ephemeral:  # the deferred "thinking..." message has the other visibility: it goes
                await interaction.delete_original_response()
            for piece in pieces(text):
                await interaction.followup.send(piece, ephemeral=not public, allowed_mentions=NO_PINGS)

    async def source_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = await asyncio.to_thread(core.source_names, channel_of(interaction), current)
        fitting = [n for n in names if len(n) <= CHOICE_LIMIT]
        return [app_commands.Choice(name=n, value=n) for n in fitting[:MAX_CHOICES]]

    @tree.command(name="attach", description="Attach one of this server's data sources to this channel's agent")
    @app_commands.describe(source="A data source loaded in this server")
    @app_commands.autocomplete(source=source_choices)
    async def attach(interaction: discord.Interaction, source: str) -> None:
        if is_help(source):
            return await answer(interaction, lambda _: usage("attach"), ephemeral=True)
        await answer(interaction, lambda channel: core.attach(channel, source))

    @tree.command(name="detach", description="Detach a data source from this channel's agent")
    @app_commands.describe(source="An attached data source")
    @app_commands.autocomplete(source=source_choices)
    async def detach(interaction: discord.Interaction, source: str) -> None:
        if is_help(source):
            return await answer(interaction, lambda _: usage("detach"), ephemeral=True)
        await answer(interaction, lambda channel: core.detach(channel, source))

    @tree.command(name="sources", description="The data sources this channel can use; share or delete one")
    @app_commands.describe(command="list (the default), share NAME, delete NAME, delete NAME confirm")
    async def sources(interaction: discord.Interaction, command: str = "list") -> None:
        if is_help(command):
            return await answer(interaction, lambda _: usage("sources"), ephemeral=True)
        user = str(interaction.user.id)
        admin = interaction.guild_id is not None and interaction.permissions.manage_guild

        def work(channel: Channel) -> Shown:
            said = core.sources_command(channel, command, user, admin)
            return answer_markdown(said), said.changed  # a share or a delete is shown to the channel

        await answer(interaction, work, ephemeral=True)

    @tree.command(name="schedule", description="Reminders and repeating prompts: list | add WHEN WHAT | cancel ID | tz")
    @app_commands.describe(command="e.g. list, add friday 10:00 release notes, cancel 3, tz Europe/Berlin")
    async def schedule(interaction: discord.Interaction, command: str = "list") -> None:
        thread = str(interaction.channel_id) if isinstance(interaction.channel, discord.Thread) else ""
        author = interaction.user.display_name
        changes = command.strip().lower().startswith(("add", "cancel", "rm", "remove", "delete", "tz "))
        def work(channel: Channel) -> str:
            return schedule_markdown(core.schedule(channel, command, author, thread))

        await answer(interaction, work, ephemeral=not changes)

    @tree.command(name="memory", description="What this channel's agent remembers (only you see it)")
    async def memory(interaction: discord.Interaction) -> None:
        async with inflight:
            await interaction.response.defer(ephemeral=True, thinking=True)
            channel = channel_of(interaction)
            try:
                home = await asyncio.to_thread(channel_home, core, channel)
            except Exception as exc:
                await interaction.followup.send(error_text(exc), ephemeral=True, allowed_mentions=NO_PINGS)
                return
            await interaction.followup.send(embed=panel_embed(home), view=PanelButtons(core, channel, home),
                                            ephemeral=True, allowed_mentions=NO_PINGS)

    @tree.command(name="help", description="What membot does and how to use its commands (only you see it)")
    async def help_command(interaction: discord.Interaction) -> None:
        await answer(interaction, lambda _: discord_help(), ephemeral=True)


def discord_help() -> str:
    return help_text(DISCORD_COMMANDS, UPLOAD_HINT)
