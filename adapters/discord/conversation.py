"""A person's message to the bot, from event to reply: where to answer (a thread, opened if needed), files to
load, the agent's turn with a typing indicator, and the replies posted in order."""

from __future__ import annotations

import asyncio
import itertools
import logging
from concurrent.futures import ThreadPoolExecutor

import discord
from cachetools import LRUCache

from adapters.discord.format import NO_PINGS, pieces, thread_name
from adapters.discord.replies import error_text, nonce, send_text
from adapters.discord.uploads import load_attachments
from adapters.discord.where import channel_for, mentions_bot, prompt_text, replies_to, speaker_for
from adapters.help import greeting
from adapters.streaming import Streamer
from agent import Channel, ChatCore, Target

log = logging.getLogger(__name__)
HANDLED_TYPES = (discord.MessageType.default, discord.MessageType.reply)
EMPTY_MENTION = greeting("/help")
POST_TIMEOUT = 60.0


class Conversations:
    def __init__(self, client: discord.Client, core: ChatCore, max_file_bytes: int,
                 stream_interval: float = 0.0) -> None:
        self.client = client
        self.stream_interval = stream_interval  # seconds between edits of a growing reply; 0: post when done
        self.core = core
        self.max_file_bytes = max_file_bytes
        # threads this bot has answered in: followed without a new mention
        self.answered: LRUCache[int, bool] = LRUCache(50_000)
        self._posting: dict[int, asyncio.Future[None]] = {}  # per target: the last answer queued to be posted
        # The inbox's writes, off the event loop, one at a time: questions reach their lanes in arrival order.
        self._inbox = ThreadPoolExecutor(max_workers=1, thread_name_prefix="discord-inbox")
        self._submitted: set[int] = set()  # tickets whose turn was queued (the turn closes them)

    async def handle(self, message: discord.Message) -> None:
        me = self.client.user
        if me is None or message.type not in HANDLED_TYPES:
            return
        place = await self._place(message)
        guild_id = message.guild.id if message.guild else None
        if not (guild_id is None or mentions_bot(message, me.id) or replies_to(message, me.id)
                or await self._follows(place, guild_id, me.id)):
            return
        text = prompt_text(message, me.id)
        channel, thread = channel_for(place, guild_id, message.author.id)
        # In the durable inbox (SQL) before anything is done: a replay, to this or another process, is answered once.
        ticket = await self._take(message, channel, thread, text, place)
        if ticket is None:
            return
        target = place
        try:
            if guild_id is not None and not isinstance(place, discord.Thread):
                target = await self._open_thread(message, text)
                thread = str(target.id) if isinstance(target, discord.Thread) else ""
            if isinstance(target, discord.Thread):
                self.answered[target.id] = True
            await self._answer(message, channel, thread, text, target, ticket)
        except Exception as exc:
            await send_text(target, error_text(exc), f"{message.id}:error")
        finally:
            if ticket not in self._submitted:
                await asyncio.get_running_loop().run_in_executor(self._inbox, self.core.settle, ticket)
            self._submitted.discard(ticket)

    async def _take(self, message: discord.Message, channel: Channel, thread: str, text: str,
                    place: discord.abc.Messageable) -> int | None:
        reply_to = Target(channel.scope, channel=str(getattr(place, "id", "") or ""))
        question = self.core.question(channel, f"discord:message:{message.id}", speaker_for(message.author), text,
                                      thread, reply_to)
        return await asyncio.get_running_loop().run_in_executor(self._inbox, self.core.take, question)

    async def _answer(self, message: discord.Message, channel: Channel, thread: str, text: str,
                      target: discord.abc.Messageable, ticket: int) -> None:
        if message.attachments:
            async with target.typing():
                reports = await load_attachments(self.core, channel, message.attachments, self.max_file_bytes,
                                                 str(message.author.id))
            await send_text(target, "\n".join(reports), f"{message.id}:files")
        if not text:
            if not message.attachments:
                await send_text(target, EMPTY_MENTION, f"{message.id}:empty")
            return
        # Queued before any await, so one channel's turns run in the order its messages arrived; the answers are
        # posted in that order too (each waits for the one before it in this target to be posted).
        streamer = self._streamer(target, message.id)
        future = self.core.submit(channel, speaker_for(message.author), text, thread, on_event=streamer, ticket=ticket)
        self._submitted.add(ticket)
        where = getattr(target, "id", 0)
        before, mine = self._posting.get(where), asyncio.get_running_loop().create_future()
        self._posting[where] = mine
        try:
            async with target.typing():
                result = await asyncio.wrap_future(future)
            if before is not None:
                await asyncio.shield(before)
            # In the question's own channel the answer is a reply to it (another message may have come between).
            question = message if message.channel.id == where else None
            replies = streamer.unshown(result.replies) if streamer else result.replies
            for n, reply in enumerate(replies):
                await send_text(target, reply, f"{message.id}:reply{n}", reply_to=question if n == 0 else None)
            if result.notice:
                await send_text(target, result.notice, f"{message.id}:notice", reply_to=None if replies else question)
        finally:
            mine.set_result(None)
            if self._posting.get(where) is mine:
                del self._posting[where]

    def _streamer(self, target: discord.abc.Messageable, key: int) -> Streamer[discord.Message] | None:
        """A reply shown as it grows, from the turn's thread: posted once, then edited at most once per interval."""
        if not self.stream_interval:
            return None
        loop = asyncio.get_running_loop()
        count = itertools.count()

        def post(text: str) -> discord.Message:
            sent = target.send(text, allowed_mentions=NO_PINGS, nonce=nonce(f"{key}:stream{next(count)}"))
            return asyncio.run_coroutine_threadsafe(sent, loop).result(POST_TIMEOUT)

        def edit(sent: discord.Message, text: str) -> None:
            asyncio.run_coroutine_threadsafe(sent.edit(content=text, allowed_mentions=NO_PINGS),
                                             loop).result(POST_TIMEOUT)

        return Streamer(post, edit, pieces, self.stream_interval)

    async def _place(self, message: discord.Message) -> discord.abc.Messageable:
        """The message's channel; a guild thread missing from the cache (e.g. after a restart) is fetched."""
        place = message.channel
        if message.guild is not None and isinstance(place, discord.PartialMessageable):
            try:
                fetched = await self.client.fetch_channel(place.id)
            except discord.HTTPException:
                return place
            if isinstance(fetched, discord.abc.Messageable):
                return fetched
        return place

    async def _follows(self, place: object, guild_id: int, me: int) -> bool:
        """A thread the bot opened or answered in: remembered in memory, else looked up in the agent's history
        (after a restart)."""
        if not isinstance(place, discord.Thread):
            return False
        if place.owner_id == me or place.id in self.answered:
            return True
        channel, thread = channel_for(place, guild_id, 0)
        if await asyncio.to_thread(self.core.knows_thread, channel, thread):
            self.answered[place.id] = True
            return True
        return False

    async def _open_thread(self, message: discord.Message, text: str) -> discord.abc.Messageable:
        """A thread on the mentioning message for the answer; the channel itself if one cannot be opened."""
        try:
            return await message.create_thread(name=thread_name(text, f"{message.author.display_name} and me"))
        except (discord.HTTPException, ValueError) as exc:
            log.warning("could not open a thread in channel %s: %s", message.channel.id, exc)
            return message.channel
