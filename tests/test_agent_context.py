"""The context window over a long conversation: summaries, token budget, tool-call pairing, restart persistence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.context import count_tokens
from agent.loop import Incoming
from agent.memory.core import Speaker
from bot.container import Container
from tests.conftest import make_settings
from tests.fakes import FakeOpenAI, default_reply, error, reply, tool_call

ANN = Speaker("U1", "Ann")
SUMMARY = "I chatted with Ann about numbered topics; nothing to act on."



def open_container(home: Path, embedder: Any, fake: FakeOpenAI, **env: Any) -> Container:
    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test",
                             MEMBOT_LLM_MODEL="fake-model", **env)
    return Container(settings, embedder=embedder)


def prompt_tokens(request: dict[str, Any]) -> int:
    """A request's size by our own offline count: system prompt + tool schemas + each message."""
    messages = request["messages"]
    total = count_tokens(messages[0]["content"])
    if request.get("tools"):
        total += count_tokens(json.dumps(request["tools"]))
    return total + sum(count_tokens(json.dumps(m, ensure_ascii=False)) + 3 for m in messages[1:])


def pairing_errors(messages: list[dict[str, Any]]) -> list[str]:
    """Every assistant tool call must be answered right after it, and every tool message must answer one."""
    problems = []
    open_ids: set[str] = set()
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            if m["tool_call_id"] not in open_ids:
                problems.append(f"message {i}: tool result {m['tool_call_id']} without its call")
            open_ids.discard(m["tool_call_id"])
            continue
        if open_ids:
            problems.append(f"message {i}: calls {sorted(open_ids)} not answered before a {m['role']} message")
            open_ids = set()
        if m["role"] == "assistant":
            open_ids = {c["id"] for c in m.get("tool_calls") or []}
    if open_ids:
        problems.append(f"calls {sorted(open_ids)} unanswered at the end")
    return problems


def summarizing_default(request: dict[str, Any]) -> Any:
    """Echo like the fake's default, but answer a tool-less request (the summarizer) with a short summary."""
    if not request.get("tools"):
        return reply(SUMMARY)
    return default_reply(request)


def last_tool_message(request: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in reversed(request["messages"]) if m["role"] == "tool")


def quote_tool_result(request: dict[str, Any]) -> Any:
    """A model that answers with what its last tool returned."""
    return tool_call("send_message", message="I found: " + last_tool_message(request)["content"])


def searching_model(query: str) -> Any:
    """A model that searches recall memory for `query`, then replies with what the search returned."""

    def answer(request: dict[str, Any]) -> Any:
        if not request.get("tools"):
            return reply(SUMMARY)
        last = request["messages"][-1]
        if last["role"] == "user" and json.loads(last["content"]).get("type") == "user_message":
            return tool_call("conversation_search", query=query, request_heartbeat=True)
        return quote_tool_result(request)

    return answer


def in_turn(*steps: Any) -> Any:
    """A model that answers the agent's calls with `steps` in order, and summary requests with a summary
    (a FIFO script would hand a step to the summarizer); then it echoes like the fake's default."""
    queue = list(steps)

    def answer(request: dict[str, Any]) -> Any:
        return queue.pop(0) if request.get("tools") and queue else summarizing_default(request)

    return answer


def test_500_turns_on_a_4k_window(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    fake.default = summarizing_default
    with open_container(home, embedder, fake, MEMBOT_CONTEXT_WINDOW=4096) as c:
        agent_id = int(c.agents.open("local", "long").id or 0)
        for turn in range(1, 501):
            text = f"turn {turn}: my favourite number today is {turn * 7}" if turn != 3 else \
                "turn 3: the vault code is KESTREL-4417, remember it"
            result = c.agents.send(agent_id, Incoming(text, ANN))
            assert not result.failed, (turn, result.notice)
            assert result.replies and result.replies[-1].startswith("echo: "), (turn, result)

        requests = fake.chat_requests
        agent_calls = [r for r in requests if r.get("tools")]
        summaries = [r for r in requests if not r.get("tools")]
        assert len(agent_calls) >= 500
        assert summaries, "a 500-turn conversation on a 4k window must have been summarized"
        for n, request in enumerate(agent_calls):
            assert prompt_tokens(request) <= 4096, f"request {n} has {prompt_tokens(request)} tokens"
            assert pairing_errors(request["messages"][1:]) == [], n
        for request in summaries:
            assert prompt_tokens(request) <= 4096
        assert len(summaries) * 4 < len(agent_calls), "each summary must free room for several turns"
        assert any("Memory pressure" in json.dumps(r["messages"]) for r in agent_calls)
        assert "turn 3:" not in json.dumps(agent_calls[-1]["messages"]), "turn 3 should long be out of view"
        assert SUMMARY in agent_calls[-1]["messages"][0]["content"]

        fake.default = searching_model("vault code")  # summaries may come in between: no FIFO script here
        result = c.agents.send(agent_id, Incoming("What was the vault code I told you?", ANN))
        assert not result.failed
        found = [json.loads(m["content"]) for r in fake.chat_requests[-3:] for m in r["messages"]
                 if m["role"] == "tool" and "matching 'vault code'" in m["content"]]
        assert found and found[0]["status"] == "OK" and "KESTREL-4417" in found[0]["message"]
        assert "KESTREL-4417" in result.replies[0]
        assert pairing_errors(fake.chat_requests[-1]["messages"][1:]) == []
        view = c.agents.memory(agent_id)
        assert view.messages >= 3 * 501  # user, assistant, tool result per turn: trimming deletes nothing
        assert view.in_context < view.messages / 10


def test_restart_keeps_memory_and_history(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    with open_container(home, embedder, fake) as c:
        agent_id = int(c.agents.open("local", "keeper").id or 0)
        fake.script(
            reply("Noting the cat.", [("core_memory_append", {"name": "human", "content": "Her cat is Miso.",
                                                               "request_heartbeat": True})]),
            tool_call("core_memory_append", name="persona", content="I keep notes on pets.", request_heartbeat=True),
            tool_call("send_message", message="Miso is a lovely name."),
        )
        assert c.agents.send(agent_id, Incoming("My cat is called Miso, a grey tabby.", ANN)).replies == \
            ["Miso is a lovely name."]
        c.agents.send(agent_id, Incoming("Also, I live in Lisbon.", ANN))
        before = c.agents.memory(agent_id)

    fake.reset()
    with open_container(home, embedder, fake) as c:
        agent = c.agents.open("local", "keeper")
        assert agent.id == agent_id
        after = c.agents.memory(agent_id)
        assert [(b.label, b.value) for b in after.blocks] == [(b.label, b.value) for b in before.blocks]
        assert after.messages == before.messages
        result = c.agents.send(agent_id, Incoming("What do you remember about me?", ANN))
        assert not result.failed
        request = fake.chat_requests[0]
        system = request["messages"][0]["content"]
        human = json.loads(request["messages"][-1]["content"])["human"]  # the speaker's block, with the input
        assert "Her cat is Miso." in human and "I keep notes on pets." in system
        history = json.dumps(request["messages"][1:])
        for earlier in ("My cat is called Miso", "I live in Lisbon", "Miso is a lovely name."):
            assert earlier in history
        assert pairing_errors(request["messages"][1:]) == []


def test_a_summary_mid_turn_keeps_the_question_being_answered(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    """When the window fills up between two steps of a turn, older turns are summarized, not the question."""
    fake.default = summarizing_default
    filler = " ".join(["The harbour crane log lists routine maintenance, lubrication and cable checks."] * 12)
    with open_container(home, embedder, fake, MEMBOT_CONTEXT_WINDOW=6000) as c:
        agent_id = int(c.agents.open("local", "steps").id or 0)
        for n in range(3):
            c.agents.send(agent_id, Incoming(f"Crane log {n}: {filler}", ANN))
        fake.reset()
        question = "Which crane log mentions the broken winch?"
        fake.default = in_turn(tool_call("conversation_search", query="crane log", request_heartbeat=True),
                               tool_call("conversation_search", query="crane log", page=2, request_heartbeat=True),
                               tool_call("send_message", message="None of them mentions a winch."))
        result = c.agents.send(agent_id, Incoming(question, ANN))
        assert result.replies[0] == "None of them mentions a winch." and not result.failed
        requests = fake.chat_requests
        assert not requests[1].get("tools"), "the window should be summarized between the first two steps"
        steps = [r for r in requests if r.get("tools")]
        said = [[json.loads(m["content"]).get("message", "") for m in r["messages"] if m["role"] == "user"]
                for r in steps]
        assert said[0][0].startswith("Crane log 0") and not any(s.startswith("Crane log") for s in said[1])
        for request in steps:
            assert prompt_tokens(request) <= 6000
            assert pairing_errors(request["messages"][1:]) == []
            assert question in json.dumps(request["messages"], ensure_ascii=False)


def test_an_endpoint_that_counts_more_tokens_than_we_do(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    """A 400 "context length exceeded" makes the agent summarize and try once more instead of failing."""
    fake.default = summarizing_default
    overflow = error(400, "This model's maximum context length is 4096 tokens. However, your messages resulted in "
                          "4399 tokens. Please reduce the length of the messages.", code="context_length_exceeded")
    with open_container(home, embedder, fake) as c:
        agent_id = int(c.agents.open("local", "tight").id or 0)
        for n in range(4):
            c.agents.send(agent_id, Incoming(f"Note {n}: the shed key hangs by the door.", ANN))
        fake.reset()
        fake.script(overflow)
        result = c.agents.send(agent_id, Incoming("Where is the shed key?", ANN))
        assert not result.failed and result.replies
        refused, summary, retried = fake.chat_requests[:3]
        assert refused.get("tools") and not summary.get("tools") and retried.get("tools")
        assert len(retried["messages"]) <= len(refused["messages"]) // 2 + 2  # about half the history goes
        assert SUMMARY in retried["messages"][0]["content"]
        assert pairing_errors(retried["messages"][1:]) == []

        fresh = int(c.agents.open("local", "fresh").id or 0)  # nothing to summarize: the turn fails clearly
        fake.script(overflow)
        result = c.agents.send(fresh, Incoming("Hello?", ANN))
        assert result.failed and "context window" in result.notice and "MEMBOT_CONTEXT_WINDOW" in result.notice
        assert c.agents.memory(fresh).messages == 0
