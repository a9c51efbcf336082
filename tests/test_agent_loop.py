"""The turn loop against the fake OpenAI server through the real client: heartbeats, the step cap, tool
failures, model failures with rollback, and the per-agent queue."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from agent import prompts
from agent.db.models import Agent, Block, Message
from agent.loop import Incoming, TurnResult
from agent.memory.core import Speaker
from bot.container import Container
from tests.conftest import make_settings
from tests.fakes import FakeOpenAI, default_reply, delay, error, raw_arguments, reply, tool_call

ANN = Speaker("U1", "Ann")
BOB = Speaker("U2", "Bob")



def open_container(home: Path, embedder: Any, fake: FakeOpenAI, **env: Any) -> Container:
    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test",
                             MEMBOT_LLM_MODEL="fake-model", **env)
    return Container(settings, embedder=embedder)


@pytest.fixture
def box(home: Path, embedder: Any, fake: FakeOpenAI) -> Iterator[Container]:
    with open_container(home, embedder, fake, MEMBOT_LLM_RETRIES=2, MEMBOT_LLM_TIMEOUT=0.5) as c:
        yield c


def new_agent(c: Container, name: str = "loop") -> int:
    return int(c.agents.open("local", name).id or 0)


def inputs(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON bodies of the user-role messages of a chat request."""
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "user"]


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]


def state(c: Container, agent_id: int) -> dict[str, Any]:
    """Everything a turn may change: messages, blocks, the agent row, its archival passages."""
    with Session(c.engine) as s:
        messages = [m.model_dump() for m in s.exec(select(Message).where(Message.agent_id == agent_id)
                                                    .order_by(col(Message.id))).all()]
        blocks = [b.model_dump() for b in s.exec(select(Block).where(Block.agent_id == agent_id)
                                                  .order_by(col(Block.id))).all()]
        agent = s.get(Agent, agent_id)
        assert agent is not None
        # The archival bookkeeping (model, next document id) is committed before a Milvus write, on purpose.
        row = agent.model_dump(exclude={"updated_at", "archival_revision", "embedding_model", "embedding_dim"})
    archival = c.passages.count(c.passages.agent_collection(agent_id)) \
        if c.passages.exists(c.passages.agent_collection(agent_id)) else 0
    return {"messages": messages, "blocks": blocks, "agent": row, "archival": archival}


# heartbeats and the step cap -------------------------------------------------------------------------------
def test_heartbeat_chain_and_inputs_as_json(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.script(
        reply("Ann likes tea; saving it.", [("core_memory_append", {"name": "human", "content": "Likes green tea.",
                                                                     "request_heartbeat": True})]),
        tool_call("send_message", message="Noted: green tea!"),
    )
    events: list[Any] = []
    result = box.agents.send(agent_id, Incoming("I like green tea.", ANN), events.append)
    assert result.replies == ["Noted: green tea!"] and not result.failed and result.steps == 2
    assert [e.kind for e in events] == ["thought", "tool", "reply"]
    first, second = fake.chat_requests
    assert inputs(first)[-1]["type"] == "user_message" and inputs(first)[-1]["message"] == "I like green tea."
    assert inputs(first)[-1]["from"] == "Ann"
    assert inputs(second)[-1] == {"type": "heartbeat", "reason": prompts.HEARTBEAT, "time": inputs(second)[-1]["time"]}
    assert tool_results(second)[-1]["status"] == "OK"
    # Each step extends the previous request unchanged (the server's prompt cache covers it); the edited block
    # is shown from the next turn on, with the speaker's input.
    assert second["messages"][:len(first["messages"])] == first["messages"]
    box.agents.send(agent_id, Incoming("And coffee?", ANN))
    assert "Likes green tea." in inputs(fake.chat_requests[-1])[-1]["human"]
    assert {t["function"]["name"] for t in first["tools"]} >= {"send_message", "archival_memory_search"}


def test_forgotten_heartbeat_after_a_search_still_replies(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)

    def answer_after_search(request: dict[str, Any]) -> Any:
        assert tool_results(request)[-1]["status"] == "OK"
        return tool_call("send_message", message="I looked, and found nothing about it.")

    fake.script(tool_call("conversation_search", query="holiday plans"), answer_after_search)  # no request_heartbeat
    result = box.agents.send(agent_id, Incoming("What were my holiday plans?", ANN))
    assert result.replies == ["I looked, and found nothing about it."]
    assert fake.errors == []
    forced = inputs(fake.chat_requests[1])[-1]
    assert forced["type"] == "heartbeat" and forced["reason"] == prompts.NO_REPLY_YET


def test_heartbeat_given_as_the_string_false_is_no_heartbeat(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.script(reply(tool_calls=[("core_memory_append", {"name": "human", "content": "Plays chess.",
                                                          "request_heartbeat": "false"}),
                                  ("send_message", {"message": "Chess, nice."})]))
    result = box.agents.send(agent_id, Incoming("I play chess.", ANN))
    assert result.replies == ["Chess, nice."] and result.steps == 1 and len(fake.chat_requests) == 1


def test_step_cap_stops_a_model_that_always_asks_for_more(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    fake.default = lambda request: tool_call("conversation_search", query="anything", request_heartbeat=True)
    with open_container(home, embedder, fake, MEMBOT_MAX_STEPS=4) as c:
        agent_id = new_agent(c)
        result = c.agents.send(agent_id, Incoming("Go on forever.", ANN))
        assert result.steps == 4 and len(fake.chat_requests) == 4
        assert result.replies == [] and not result.failed
        assert "4 chained steps" in result.notice
        assert any(e.kind == "notice" and "4 chained steps" in e.text for e in result.events)
        fake.default = default_reply
        assert c.agents.send(agent_id, Incoming("Hello again.", ANN)).replies == ["echo: " + json.dumps(
            inputs(fake.chat_requests[-1])[-1], ensure_ascii=False)]


# tool failures ---------------------------------------------------------------------------------------------
def test_malformed_arguments_fail_and_the_model_recovers(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.script(
        raw_arguments("core_memory_append", '{"name": "human", "content": "Likes jazz", "request_heartbeat": tr'),
        tool_call("core_memory_append", name="human", content="Likes jazz", request_heartbeat=True),
        tool_call("send_message", message="Jazz noted."),
    )
    result = box.agents.send(agent_id, Incoming("I like jazz.", ANN))
    assert result.replies == ["Jazz noted."]
    failed = tool_results(fake.chat_requests[1])[-1]
    assert failed["status"] == "Failed" and "not valid JSON" in failed["message"]
    assert inputs(fake.chat_requests[1])[-1]["reason"] == prompts.FAILED
    assert tool_results(fake.chat_requests[2])[-1]["status"] == "OK"
    assert box.agents.memory(agent_id).blocks[-1].value.count("Likes jazz") == 1


def test_unknown_tool_fails_and_the_model_recovers(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.script(tool_call("launch_rockets", count=3, request_heartbeat=True),
                tool_call("send_message", message="I cannot do that."))
    result = box.agents.send(agent_id, Incoming("Launch the rockets.", ANN))
    assert result.replies == ["I cannot do that."]
    failed = tool_results(fake.chat_requests[1])[-1]
    assert failed["status"] == "Failed" and "no tool named 'launch_rockets'" in failed["message"]
    assert "send_message" in failed["message"]  # the model is told what exists


def test_long_tool_output_is_truncated_with_a_note(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.script(tool_call("core_memory_replace", name="human", old_content="x" * 5000, new_content="y",
                          request_heartbeat=True),
                tool_call("send_message", message="That text was not there."))
    box.agents.send(agent_id, Incoming("Replace it.", ANN))
    message = tool_results(fake.chat_requests[1])[-1]["message"]
    assert message.startswith("Edit failed:")
    assert len(message) < 3200 and message.endswith("ask for a narrower result]") and "truncated" in message


def test_a_search_page_is_not_cut_at_3000_characters(box: Container, fake: FakeOpenAI) -> None:
    """Search tools page their results instead (like the original): a page of five long passages arrives whole."""
    from agent.loading.inputs import InputFile

    words = " ".join(["quarterly", "shipment", "warehouse", "inspection", "schedule", "container", "logistics"] * 12)
    files = [InputFile.from_bytes(f"harbour{n}.txt", f"Harbour project note {n}: {words} (end of note {n})".encode())
             for n in range(5)]
    assert box.loader.load("local", "harbour", files).passages == 5
    agent_id = new_agent(box)
    box.agents.attach(agent_id, "harbour")
    fake.script(tool_call("archival_memory_search", query="harbour project", request_heartbeat=True),
                tool_call("send_message", message="Found them."))
    box.agents.send(agent_id, Incoming("What do you know about the harbour project?", ANN))
    page = tool_results(fake.chat_requests[1])[-1]["message"]
    assert len(page) > 3000 and "truncated" not in page
    assert all(f"(end of note {n})" in page for n in range(5))


# model failures --------------------------------------------------------------------------------------------
def test_rate_limit_then_success_is_retried(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.script(error(429, "Rate limit reached", retry_after=0.01), tool_call("send_message", message="Hi Ann!"))
    result = box.agents.send(agent_id, Incoming("Hi!", ANN))
    assert result.replies == ["Hi Ann!"] and not result.failed
    assert len(fake.chat_requests) == 2


@pytest.mark.parametrize("failure", ["http500", "timeout"])
def test_model_failure_rolls_the_turn_back(box: Container, fake: FakeOpenAI, failure: str) -> None:
    agent_id = new_agent(box)
    box.agents.send(agent_id, Incoming("Hello, I am Ann.", ANN))  # some history first
    before = state(box, agent_id)
    # One good step that edits core memory and archival memory, then the model fails for good (3 tries).
    fake.script(reply(tool_calls=[("core_memory_append", {"name": "persona", "content": "I met Bob.",
                                                          "request_heartbeat": True}),
                                  ("archival_memory_insert", {"content": "Bob's locker code is 5521.",
                                                              "request_heartbeat": True})]))
    bad = error(500, "upstream exploded", retry_after=0.01) if failure == "http500" else delay(3)
    fake.script(bad, bad, bad)
    result = box.agents.send(agent_id, Incoming("I am Bob; my locker code is 5521.", BOB))
    assert result.failed and result.replies == []
    expected = "HTTP 500" if failure == "http500" else "did not answer in time"
    assert expected in result.notice and "not processed" in result.notice and "send it again" in result.notice
    assert len(fake.chat_requests) == 1 + 1 + 3
    assert state(box, agent_id) == before
    assert box.agents.search_archival(agent_id, "locker code 5521").total == 0
    # The agent is not bricked: the next turn works and does not see the failed one.
    fake.reset()
    assert box.agents.send(agent_id, Incoming("Are you there?", ANN)).replies
    assert "5521" not in json.dumps(fake.chat_requests[0])


def test_summary_failure_does_not_fail_the_turn(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    def no_summaries(request: dict[str, Any]) -> Any:
        return error(500, "no", headers={"x-should-retry": "false"}) if not request.get("tools") \
            else default_reply(request)

    fake.default = no_summaries
    with open_container(home, embedder, fake, MEMBOT_CONTEXT_WINDOW=3000, MEMBOT_LLM_RETRIES=0) as c:
        agent_id = new_agent(c)
        results = [c.agents.send(agent_id, Incoming(f"Message number {n} with some words.", ANN))
                   for n in range(25)]
        assert not any(r.failed for r in results)
        assert any(not r.get("tools") for r in fake.chat_requests), "the window should have been summarized"
        view = c.agents.memory(agent_id)
        assert "earlier messages left the context" in view.summary and view.in_context < view.messages


# the queue -------------------------------------------------------------------------------------------------
def test_concurrent_messages_are_queued_in_order(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.default = lambda request: delay(0.05, default_reply(request))
    start = threading.Barrier(10)
    lock = threading.Lock()
    order: list[int] = []
    futures: dict[int, Any] = {}

    def submit(n: int) -> None:
        start.wait()
        with lock:  # records the true submission order; the turns themselves run while others arrive
            futures[n] = box.agents.submit(agent_id, Incoming(f"message {n}", (ANN, BOB)[n % 2]))
            order.append(n)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results: dict[int, TurnResult] = {n: f.result(timeout=60) for n, f in futures.items()}
    assert sorted(results) == list(range(10))
    for n, result in results.items():
        assert not result.failed and len(result.replies) == 1 and f'message {n}"' in result.replies[0]
    requests = fake.chat_requests
    assert [inputs(r)[-1]["message"] for r in requests] == [f"message {n}" for n in order]
    for previous, request in zip(order, requests[1:]):  # each turn saw the previous one finished
        assert f"message {previous}" in json.dumps(request["messages"][-4:])
    with Session(box.engine) as s:
        said = s.exec(select(Message.content).where(Message.agent_id == agent_id, Message.role == "user",
                                                    Message.kind == "message").order_by(col(Message.id))).all()
    assert list(said) == [f"message {n}" for n in order]
