"""The Slack adapter's state and scheduling: which events were seen and which threads the bot is in (in SQL,
shared by every process), whose names are known; each channel's work runs in its agent's lane of the core's turn
pool, in arrival order, after Slack has its ack."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from adapters.slack.commands import Response
from adapters.slack.conversation import handle_message
from adapters.slack.files import SLACK_FILE_ORIGINS
from adapters.slack.format import from_slack
from adapters.slack.messages import SlackMessage, channel_for
from adapters.slack.people import People
from adapters.slack.privacy import Privacy
from adapters.slack.replies import apology
from adapters.slack.seen import SeenKeys
from adapters.slack.threads import Threads
from adapters.slack.uploads import load_uploads, shared_at
from agent import Channel, ChatCore, Ledger, Speaker, Target, UserError

log = logging.getLogger(__name__)


class SlackBot:
    def __init__(self, core: ChatCore, max_file_bytes: int, ledger: Ledger,
                 file_origins: Sequence[str] = SLACK_FILE_ORIGINS, stream_interval: float = 0.0) -> None:
        self.core = core
        self.max_file_bytes = max_file_bytes
        self.file_origins = tuple(file_origins)  # where the bot token may fetch uploads from
        self.commands = ThreadPoolExecutor(max_workers=8, thread_name_prefix="slack-command")
        self.seen = SeenKeys(ledger)  # in SQL: every process of this app shares it
        self.people = People()
        self.privacy = Privacy()
        self.threads = Threads(ledger)
        self.stream_interval = stream_interval

    def first_delivery(self, body: dict[str, Any]) -> bool:
        """False for a retry of an event already handled, by any process. Slack retries when an ack was slow or
        lost; the event_id stays the same, so a retry whose first delivery never arrived is still handled."""
        event_id = body.get("event_id")
        return not event_id or self.seen.first("event", str(event_id))

    def message(self, client: WebClient, msg: SlackMessage, bot_user_id: str) -> None:
        # A mention arrives as app_mention and as message (possibly at two processes): the first one is handled.
        if not self.seen.first("message", msg.team, msg.channel, msg.ts):
            return
        if not (msg.mentioned or msg.is_dm or msg.in_thread):  # not for the bot; its files may still be loaded
            self._queue(msg.place, lambda: handle_message(self, client, msg, bot_user_id))
            return
        # Possibly a question: written to the durable inbox before Slack gets its ack (listeners run first).
        question = self.core.question(msg.place, f"slack:{msg.team}:{msg.channel}:{msg.ts}",
                                      Speaker(msg.user, msg.user), from_slack(msg.text, _raw, bot_user_id),
                                      msg.root, Target(msg.place.scope, msg.channel, msg.reply_thread),
                                      confirmed=msg.mentioned or msg.is_dm)
        queued = self.core.accept(question, lambda ticket: handle_message(self, client, msg, bot_user_id, ticket))
        if queued is not None:
            queued.add_done_callback(_log_failure)

    def file_shared(self, client: WebClient, team: str, channel: str, user: str, file_id: str) -> None:
        def job() -> None:
            if self.seen.known("file", team, channel, file_id):
                return  # already loaded from the upload's message event
            try:
                file = client.files_info(file=file_id)["file"]
            except SlackApiError as exc:
                log.warning("files.info for %s failed: %s", file_id, exc.response.get("error"))
                return
            ts, thread = shared_at(file, channel)
            where = thread if channel.startswith("D") else (thread or ts)
            load_uploads(self, client, channel_for(team, channel, user), channel, ts, where, [file], user)

        self._queue(channel_for(team, channel, user), job)

    def _queue(self, place: Channel, job: Callable[[], None]) -> None:
        """In the lane of the channel's agent: after the channel's earlier events, never racing its turns."""
        self.core.in_lane(place, job).add_done_callback(_log_failure)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no channel has work (tests, benchmarks); False on time-out."""
        return self.core.agents.pool.wait_idle(timeout)

    def respond_later(self, respond: Callable[..., Any], work: Callable[[], list[Response]]) -> None:
        """Run a command after its ack and send what it answers to its response_url."""
        def job() -> None:
            try:
                answers = work()
            except UserError as exc:
                answers = [{"response_type": "ephemeral", "text": str(exc)}]
            except Exception:
                answers = [{"response_type": "ephemeral", "text": apology("a slash command failed")}]
            for answer in answers:
                respond(**answer)

        self.commands.submit(job)

    def later(self, work: Callable[[], object], what: str) -> None:
        """Run `work` after the ack; a failure is logged with an error id (nobody waits for an answer)."""
        def job() -> None:
            try:
                work()
            except Exception:
                apology(f"{what} failed")

        self.commands.submit(job)

    def close(self) -> None:
        """Stop the slash commands; the turns taken finish (or are abandoned) when the container closes."""
        self.commands.shutdown(wait=True)


def _raw(user: str) -> str:
    return user  # the inbox's copy of a question keeps user ids: no Slack call before the ack


def _log_failure(future: Future[None]) -> None:
    exc = None if future.cancelled() else future.exception()
    if exc is not None and isinstance(exc, Exception):  # a job reports its own errors; this is the last resort
        log.error("a Slack event's handling failed", exc_info=exc)
