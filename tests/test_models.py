"""Bring your own model: for each way real servers and small models answer (the fake's modes), a conversation
through the real openai client ends with the person getting a reply or one clear notice, never a traceback or
the step cap, in as few requests as the behaviour allows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.loop import Incoming, TurnEvent, TurnResult
from agent.memory.core import Speaker
from bot.container import Container
from tests.conftest import make_settings
from tests.fakes import FakeOpenAI, reply, tool_call
from tests.fakes.model_modes import MODES, prompt_tokens

ANN = Speaker("U1", "Ann")


def open_box(home: Path, embedder: Any, fake: FakeOpenAI, **env: Any) -> Container:
    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test",
                             MEMBOT_LLM_MODEL="fake-model", MEMBOT_LLM_RETRIES=3, MEMBOT_LLM_TIMEOUT=2, **env)
    return Container(settings, embedder=embedder)


@pytest.fixture
def box(home: Path, embedder: Any, fake: FakeOpenAI) -> Iterator[Container]:
    with open_box(home, embedder, fake) as c:
        yield c


def say(c: Container, text: str, events: list[TurnEvent] | None = None) -> TurnResult:
    agent_id = int(c.agents.open("local", "byo").id or 0)
    return c.agents.send(agent_id, Incoming(text, ANN), events.append if events is not None else None)


def assert_clean(result: TurnResult, steps_at_most: int) -> None:
    assert "chained steps" not in result.notice and "Traceback" not in result.notice
    assert bool(result.replies) != bool(result.notice), (result.replies, result.notice)
    assert result.steps <= steps_at_most


# answers -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["openai", "arguments-object", "content-json", "content-tags", "content-functions",
                                  "sse-unasked"])
def test_tool_calls_in_every_shape_reach_the_person(box: Container, fake: FakeOpenAI, mode: str) -> None:
    fake.mode = mode
    fake.script(reply("Saving that.", [("core_memory_append", {"name": "human", "content": "Likes tea.",
                                                               "request_heartbeat": True})]),
                tool_call("send_message", message="Noted, tea it is."))
    result = say(box, "I like tea.")
    assert_clean(result, 2)
    assert result.replies == ["Noted, tea it is."] and len(fake.chat_requests) == 2
    assert "Likes tea." in box.agents.memory(int(box.agents.open("local", "byo").id or 0)).blocks[-1].value
    second = fake.chat_requests[1]["messages"]
    step = next(m for m in second if m["role"] == "assistant")
    assert isinstance(step["tool_calls"][0]["function"]["arguments"], str)  # sent back as a string, always
    assert json.loads(step["tool_calls"][0]["function"]["arguments"])["content"] == "Likes tea."
    assert step.get("content") in (None, "Saving that.") or "Saving that." in step["content"]


def test_plain_text_becomes_the_reply_after_one_nudge(box: Container, fake: FakeOpenAI) -> None:
    fake.mode = "plain-text"
    fake.script(reply("Hello Ann, nice to meet you."), reply("Hello Ann! Nice to meet you."))
    result = say(box, "Hi, I am Ann.")
    assert_clean(result, 2)
    assert result.replies == ["Hello Ann! Nice to meet you."] and len(fake.chat_requests) == 2
    nudge = json.loads(fake.chat_requests[1]["messages"][-1]["content"])
    assert nudge["type"] == "heartbeat" and "send_message" in nudge["reason"]
    # The delivered words are history as a reply, so the next turn shows them as sent, not as a thought.
    fake.mode = "openai"
    say(box, "What did you say?")
    replayed = [m for m in fake.chat_requests[-1]["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert "Nice to meet you" in replayed[-1]["tool_calls"][0]["function"]["arguments"]


def test_strict_mode_keeps_plain_text_a_thought_and_says_so(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    fake.mode = "plain-text"
    with open_box(home, embedder, fake, MEMBOT_REPLY_MODE="strict") as c:
        result = say(c, "Hi!")
    assert_clean(result, 2)
    assert not result.replies and "did not call send_message" in result.notice and "MEMBOT_REPLY_MODE" in result.notice


def test_empty_answers_end_in_one_notice(box: Container, fake: FakeOpenAI) -> None:
    fake.mode = "empty"
    result = say(box, "Hello?")
    assert_clean(result, 2)
    assert "neither text nor a tool call" in result.notice and "membot doctor" in result.notice
    assert len(fake.chat_requests) == 2  # one nudge, not seven
    # The empty step is not stored, so it is never replayed (a strict server would answer HTTP 500 to it).
    assert not [m for m in fake.chat_requests[1]["messages"] if m["role"] == "assistant"]


def test_an_empty_step_then_a_reply(box: Container, fake: FakeOpenAI) -> None:
    fake.script(reply(""), tool_call("send_message", message="Sorry, here I am."))
    result = say(box, "Hello?")
    assert result.replies == ["Sorry, here I am."] and fake.errors == []


def test_an_answer_cut_at_max_tokens_is_delivered_with_a_note(box: Container, fake: FakeOpenAI) -> None:
    fake.mode = "length"
    fake.script(tool_call("send_message", message="Here is a long answer that goes on and on and on and on."))
    result = say(box, "Tell me everything.")
    assert_clean(result, 1)
    assert result.replies[0].startswith("Here is a long answer") and "MEMBOT_MAX_TOKENS" in result.replies[0]
    assert fake.chat_requests[0]["max_tokens"] == 512


def test_a_cut_tool_call_is_one_notice(box: Container, fake: FakeOpenAI) -> None:
    fake.mode = "length"
    fake.script(tool_call("archival_memory_insert", content="x" * 200, request_heartbeat=True))
    result = say(box, "Remember this.")
    assert_clean(result, 1)
    assert "cut" in result.notice and "MEMBOT_MAX_TOKENS" in result.notice


@pytest.mark.parametrize("mode", ["openai", "stream-quirks"])
def test_streamed_answers_and_the_growing_reply(home: Path, embedder: Any, fake: FakeOpenAI, mode: str) -> None:
    fake.mode = mode
    text = "A streamed answer, long enough to arrive in several pieces \"quoted\" and done."
    fake.script(tool_call("conversation_search", query="tea"), tool_call("send_message", message=text))
    events: list[TurnEvent] = []
    with open_box(home, embedder, fake, MEMBOT_LLM_STREAM="on") as c:
        result = say(c, "What do I like?", events)
    assert_clean(result, 2)
    assert result.replies == [text] and all(r["stream"] is True for r in fake.chat_requests)
    drafts = [e.text for e in events if e.kind == "draft"]
    assert drafts and drafts[-1] == text and all(text.startswith(d) for d in drafts)
    if mode == "openai":
        assert len(drafts) > 2  # it grew piece by piece


# permanent errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "fix"), [
    ("ollama-no-tools", "pick a tool-capable model"),
    ("llama-server-no-jinja", "--jinja"),
    ("vllm-no-tool-parser", "--enable-auto-tool-choice --tool-call-parser"),
    ("validation-error", "Extra inputs are not permitted"),
])
def test_permanent_errors_are_explained_once_and_not_retried(box: Container, fake: FakeOpenAI, mode: str,
                                                             fix: str) -> None:
    fake.mode = mode
    result = say(box, "Hello.")
    assert result.failed and fix in result.notice and "send it again once the model is set up" in result.notice
    assert len(fake.chat_requests) == 1


# context overflow ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [m for m in MODES if m.startswith("overflow-")])
def test_each_servers_overflow_is_recognised(box: Container, fake: FakeOpenAI, mode: str) -> None:
    for n in range(4):
        assert say(box, f"Message {n}: " + "words and more words " * 20).replies
    fake.mode = mode
    fake.window = prompt_tokens(fake.chat_requests[-1]) - 200  # the history no longer fits; the fixed part does
    result = say(box, "And one more.")
    assert result.replies and not result.failed, result.notice
    assert any(not r.get("tools") for r in fake.chat_requests), "the window should have been summarized"
    assert len(fake.chat_requests) <= 4 + 3  # overflow, summary, retry: no blind retries


@pytest.mark.parametrize("mode", ["overflow-vllm", "overflow-llama-server", "overflow-lmstudio"])
def test_a_window_setting_above_the_servers_window_is_named(box: Container, fake: FakeOpenAI, mode: str) -> None:
    fake.mode, fake.window = mode, 3000
    result = say(box, "Hello there. " * 1000)  # this turn alone is too big for the server's window
    assert result.failed and "Set MEMBOT_CONTEXT_WINDOW=3000" in result.notice
    assert len(fake.chat_requests) <= 3


def test_a_right_window_setting_is_not_blamed(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    fake.mode, fake.window = "overflow-vllm", 600  # smaller than membot's fixed prompt
    with open_box(home, embedder, fake, MEMBOT_CONTEXT_WINDOW=2048) as c:
        result = say(c, "Hello.")
    assert result.failed and "fixed prompt alone" in result.notice and "at least 2048" in result.notice
    assert "Set MEMBOT_CONTEXT_WINDOW" not in result.notice


def test_the_fake_refuses_what_llama_cpp_python_refuses(fake: FakeOpenAI) -> None:
    """The request check the other tests rely on can fail: a null assistant step is HTTP 500."""
    import openai

    client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    with pytest.raises(openai.InternalServerError, match="valid string"):
        client.chat.completions.create(model="fake-model", messages=[
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": None},
            {"role": "user", "content": "hello?"}])


def test_a_summary_that_echoes_its_instructions_is_replaced(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    from agent.prompts import SUMMARIZE
    from tests.fakes import default_reply

    fake.default = lambda request: reply(SUMMARIZE) if not request.get("tools") else default_reply(request)
    with open_box(home, embedder, fake, MEMBOT_CONTEXT_WINDOW=2048) as c:
        for n in range(12):
            assert say(c, f"Note {n}: the harbour crane number {n} needs oil.").replies
        summary = c.agents.memory(int(c.agents.open("local", "byo").id or 0)).summary
    assert any(not r.get("tools") for r in fake.chat_requests), "the window should have been summarized"
    assert "You are the memory" not in summary and "harbour crane" in summary and "Digest:" in summary


# settings --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("env", "message"), [
    ({"MEMBOT_CONTEXT_WINDOW": "1024"}, "MEMBOT_CONTEXT_WINDOW must be at least 2048 tokens, got 1024"),
    ({"MEMBOT_MAX_TOKENS": "5000"}, "MEMBOT_MAX_TOKENS must be between 1 and half of MEMBOT_CONTEXT_WINDOW (4096)"),
    ({"MEMBOT_REPLY_MODE": "loose"}, "MEMBOT_REPLY_MODE must be one of auto, strict, got 'loose'"),
    ({"MEMBOT_LLM_STREAM": "yes"}, "MEMBOT_LLM_STREAM must be one of on, off, got 'yes'"),
])
def test_model_settings_are_checked(home: Path, env: dict[str, str], message: str) -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        make_settings(home, **env)
    assert message in str(raised.value)


def test_a_window_too_small_for_the_fixed_prompt_fails_at_start(home: Path, fake: FakeOpenAI) -> None:
    from agent.errors import ConfigError

    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, MEMBOT_CONTEXT_WINDOW=2048, MEMBOT_MAX_TOKENS=1000)
    with Container(settings) as c, pytest.raises(ConfigError) as raised:
        _ = c.runner
    assert "MEMBOT_CONTEXT_WINDOW=2048 is too small" in str(raised.value) and "MEMBOT_MAX_TOKENS" in str(raised.value)
    assert fake.chat_requests == []  # found before any message
    small = make_settings(home, OPENAI_BASE_URL=fake.base_url, MEMBOT_CONTEXT_WINDOW=2048)
    with Container(small) as c:
        assert c.runner.limits.budget.reply_reserve == 256 == small.reply_tokens


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_ends_in_a_reply_or_one_notice(box: Container, fake: FakeOpenAI, mode: str) -> None:
    """Three turns in each mode, with the fake's default answers (a send_message echo): never the step cap."""
    fake.mode, fake.window = mode, 1500
    for text in ("Hello there.", "Tell me more. " * 120, "Thanks!"):
        before = len(fake.chat_requests)
        result = say(box, text)
        assert_clean(result, 2)
        assert len(fake.chat_requests) - before <= 4  # at most: overflow, summary, retry, nudge
        assert "please send it again" not in result.notice  # nothing here is worth a blind resend


def test_the_default_tool_schemas_are_compact(box: Container) -> None:
    from agent.context import count_tokens

    assert count_tokens(json.dumps(box.runner.schemas)) <= 1000
    assert box.runner.fixed_estimate() + 256 + 128 <= 2048  # the smallest window keeps room for a conversation
