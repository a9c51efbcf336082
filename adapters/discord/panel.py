"""/memory on Discord: the channel agent at a glance as an ephemeral embed (memory blocks, sources, schedules,
recent activity) with an edit button per block opening a modal; the save goes through the block's limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

import discord

from adapters.discord.format import NO_PINGS
from adapters.discord.replies import error_text
from agent import Channel, ChannelHome, ChatCore, edit_block

FIELD_LIMIT = 1024  # an embed field's value
MAX_BUTTONS = 20  # 25 a message; room to spare
INPUT_LIMIT = 4000  # a modal text input


def panel_embed(home: ChannelHome) -> discord.Embed:
    embed = discord.Embed(title="Memory of this channel's agent", description=f"{home.messages} messages")
    for block in home.blocks[:20]:
        embed.add_field(name=f"{block.title} ({len(block.value)}/{block.limit})"[:256],
                        value=_cut(block.value or "(empty)"), inline=False)
    attached = ", ".join(f"`{s.name}` ({s.passages} passages, {s.files} files)" for s in home.attached) or "none"
    available = ", ".join(f"`{s.name}` ({s.passages})" for s in home.available) or "none"
    embed.add_field(name="Sources", value=_cut(f"Attached: {attached}\nAvailable: {available}"), inline=False)
    embed.add_field(name="Schedules", value=_cut("\n".join(home.schedules) or "none"), inline=False)
    recent = "\n".join(f"{a.at:%Y-%m-%d %H:%M} {a.who or 'membot'}: {' '.join(a.text.split())[:100]}"
                       for a in home.recent)
    embed.add_field(name="Recent activity", value=_cut(recent or "nothing yet"), inline=False)
    return embed


class PanelButtons(discord.ui.View):
    """One "Edit" button per memory block; only the person who asked for the panel sees it (it is ephemeral)."""

    def __init__(self, core: ChatCore, channel: Channel, home: ChannelHome) -> None:
        super().__init__(timeout=900)
        for n, block in enumerate(home.blocks[:MAX_BUTTONS]):
            self.add_item(EditButton(n, partial(EditBlock, core, channel, block.label, block.title, block.value,
                                                block.limit)))


class EditButton(discord.ui.Button["PanelButtons"]):
    def __init__(self, n: int, modal: Callable[[], EditBlock]) -> None:
        super().__init__(label=modal().title, custom_id=f"membot:edit:{n}", style=discord.ButtonStyle.secondary)
        self.modal = modal  # a new modal for each click

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(self.modal())


class EditBlock(discord.ui.Modal):
    def __init__(self, core: ChatCore, channel: Channel, label: str, title: str, value: str, limit: int) -> None:
        super().__init__(title=f"Edit {title}"[:45], custom_id=f"membot:block:{label}"[:100])
        self.core, self.channel, self.label = core, channel, label
        self.text: discord.ui.TextInput[EditBlock] = discord.ui.TextInput(
            label=f"{title} (at most {limit} characters)"[:45], style=discord.TextStyle.paragraph,
            default=value[:INPUT_LIMIT], required=False, max_length=min(limit, INPUT_LIMIT))
        self.add_item(self.text)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledged before any work
        try:
            answer = await asyncio.to_thread(edit_block, self.core, self.channel, self.label, self.text.value)
        except Exception as exc:
            answer = error_text(exc)
        await interaction.followup.send(answer, ephemeral=True, allowed_mentions=NO_PINGS)


def _cut(text: str) -> str:
    return text if len(text) <= FIELD_LIMIT else text[:FIELD_LIMIT - 1] + "…"
