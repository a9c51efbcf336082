"""Discord attachments as data sources: the size is checked before downloading, the bytes go to ChatCore.load."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import discord

from adapters.listing import load_report_markdown
from agent import Channel, ChatCore, InputFile


async def load_attachments(core: ChatCore, channel: Channel, attachments: Sequence[discord.Attachment],
                           max_bytes: int, uploader: str = "") -> list[str]:
    """Load each attachment as the channel's source and attach it (visible in the server, or only in that channel
    when it is private or a DM); one report per file."""
    reports: list[str] = []
    files: list[InputFile] = []
    for attachment in attachments:
        if attachment.size > max_bytes:
            reports.append(f"Could not load `{attachment.filename}`: it is {attachment.size / 1e6:.3g} MB and "
                           f"the limit is {max_bytes / 1e6:g} MB.")
            continue
        try:
            data = await attachment.read()  # the signed CDN link expires: download at once
        except discord.HTTPException as exc:
            reports.append(f"Could not download `{attachment.filename}` from Discord (HTTP {exc.status}); "
                           "please upload it again.")
            continue
        files.append(InputFile.from_bytes(attachment.filename, data))
    if files:
        loaded = await asyncio.to_thread(core.load, channel, files, uploader)
        reports.extend(load_report_markdown(name, report, channel.shareable) for name, report in loaded)
    return reports
