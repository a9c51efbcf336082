"""A person's message, once it is the channel's turn: load its files, and answer it if it is for the bot."""

from __future__ import annotations

from slack_sdk import WebClient

from adapters.help import greeting
from adapters.slack.commands import HELP_COMMAND
from adapters.slack.format import from_slack, pieces
from adapters.slack.messages import SlackMessage
from adapters.slack.replies import apology, post, post_one, working
from adapters.slack.state import SlackState
from adapters.slack.uploads import load_uploads
from adapters.streaming import Streamer
from agent import TurnResult, UserError


def handle_message(bot: SlackState, client: WebClient, msg: SlackMessage, bot_user_id: str, ticket: int = 0) -> None:
    """`ticket`: the message's row in the durable inbox (a possible question); closed as skipped by the core if
    no turn runs for it."""
    if msg.files:
        load_uploads(bot, client, msg.place, msg.channel, msg.ts, msg.reply_thread, list(msg.files), msg.user,
                     msg.channel_type)
    addressed = msg.mentioned or msg.is_dm or (
        msg.in_thread and bot.threads.bot_in(client, msg.team, msg.channel, msg.thread_ts, bot_user_id))
    if not addressed:
        return
    text = from_slack(msg.text, lambda user: bot.people.name(client, user), bot_user_id)
    if text:
        if ticket and not (msg.mentioned or msg.is_dm):
            bot.core.confirm(ticket)  # a follow-up in the bot's thread: a question after all
        answer(bot, client, msg, text, ticket)
    elif not msg.files:  # a bare mention: say hello rather than nothing
        post(client, msg.channel, msg.reply_thread, [greeting(HELP_COMMAND)])


def answer(bot: SlackState, client: WebClient, msg: SlackMessage, text: str, ticket: int = 0) -> None:
    with working(client, msg.channel, msg.ts):
        try:
            speaker = bot.people.speaker(client, msg.user)
            streamer = _streamer(bot, client, msg)
            result = bot.core.submit(msg.place, speaker, text, thread=msg.root, on_event=streamer,
                                     ticket=ticket).result()
            texts = shown(result, streamer)
        except UserError as exc:
            texts = [str(exc)]
        except Exception:
            texts = [apology(f"a turn in {msg.channel} failed")]
        post(client, msg.channel, msg.reply_thread, texts)
    if msg.reply_thread:
        bot.threads.joined(msg.team, msg.channel, msg.reply_thread)


def shown(result: TurnResult, streamer: Streamer[str] | None = None) -> list[str]:
    """The agent's messages (those not already shown while streamed), and the notice when the turn failed or sent
    nothing."""
    notice = [f"_{result.notice}_"] if result.notice and (result.failed or not result.replies) else []
    return (streamer.unshown(result.replies) if streamer else result.replies) + notice


def _streamer(bot: SlackState, client: WebClient, msg: SlackMessage) -> Streamer[str] | None:
    """A reply shown as it grows: posted once, then chat.update at most once per interval."""
    if not bot.stream_interval:
        return None
    return Streamer(lambda text: post_one(client, msg.channel, msg.reply_thread, text),
                    lambda ts, text: client.chat_update(channel=msg.channel, ts=ts, text=text),
                    pieces, bot.stream_interval)
