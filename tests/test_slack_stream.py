"""Streamed replies on Slack: with MEMBOT_LLM_STREAM=on the reply is posted at its first draft and grows by
chat.update until it is the reply; MEMBOT_STREAM_REPLIES=off posts it once, when done. The real Bolt app and
openai client against the fakes (fixtures of test_slack.py)."""

from __future__ import annotations

from typing import Any

from adapters.slack.format import to_mrkdwn
from tests.fakes import tool_call
from tests.test_slack import model, open_world

__all__ = ["model", "open_world"]  # fixtures used here

REPLY = ("A streamed answer, long enough to arrive in several pieces: **bold** stays bold, and the whole text "
         "arrives in the end.")


def test_a_streamed_reply_grows_into_the_reply(open_world: Any) -> None:
    world = open_world("socket", MEMBOT_LLM_STREAM="on")
    world.running.bot.stream_interval = 1e-6  # every draft shown (the real pace is one edit a second)
    world.model.script(tool_call("send_message", message=REPLY))
    ts = world.slack.say("U1", "C1", "<@UBOT> tell me")
    world.slack.wait_for(lambda: world.model.chat_requests and world.slack.calls_of("reactions.remove"), 60,
                         "the turn")
    [message] = world.slack.posts("C1")
    final = to_mrkdwn(REPLY)
    assert message["thread_ts"] == ts and message["text"] == final
    versions = message["versions"]
    assert len(versions) >= 3 and versions[-1] == final
    drafts = [v.removesuffix(" …") for v in versions[:-1]]
    assert all(v.endswith(" …") for v in versions[:-1])
    assert all(len(a) <= len(b) for a, b in zip(drafts, drafts[1:]))  # it only grows
    assert len(world.slack.calls_of("chat.postMessage")) == 1 and world.model.chat_requests[0]["stream"] is True
    assert "*bold*" in final


def test_streaming_off_posts_once(open_world: Any) -> None:
    world = open_world("socket", MEMBOT_LLM_STREAM="on", MEMBOT_STREAM_REPLIES="off")
    world.model.script(tool_call("send_message", message=REPLY))
    world.slack.say("U1", "C1", "<@UBOT> tell me")
    [message] = world.slack.wait_posts(1, "C1")
    world.running.bot.wait_idle(30)
    assert message["text"] == to_mrkdwn(REPLY) and "versions" not in message
    assert not world.slack.calls_of("chat.update")
