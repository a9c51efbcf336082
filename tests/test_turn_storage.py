"""A turn holds no SQL lock while the model thinks, and lands all-or-nothing: turns of different agents overlap
on the default SQLite, a quick turn commits while a long one waits for the model, a failed turn leaves nothing,
and two turns of one agent landing at once (as two processes would) both keep their core memory edits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from agent.db.models import Block, Message
from agent.loop import Incoming
from agent.memory.core import Speaker
from bot.container import Container
from tests.conftest import make_settings
from tests.fakes import FakeOpenAI, delay, error, reply, tool_call

ANN = Speaker("U1", "Ann")
BOB = Speaker("U2", "Bob")


@pytest.fixture(params=["sqlite", "postgresql"])
def box(request: pytest.FixtureRequest, home: Path, embedder: Any, fake: FakeOpenAI) -> Iterator[Container]:
    env = {"MEMBOT_DATABASE_URL": request.getfixturevalue("fresh_pg_url")} if request.param == "postgresql" else {}
    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test",
                             MEMBOT_LLM_MODEL="fake-model", MEMBOT_LLM_RETRIES=2, **env)
    with Container(settings, embedder=embedder) as c:
        yield c


@pytest.fixture
def sqlite_box(home: Path, embedder: Any, fake: FakeOpenAI) -> Iterator[Container]:
    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test", MEMBOT_LLM_MODEL="fake-model")
    with Container(settings, embedder=embedder) as c:
        yield c


def last_input(request: dict[str, Any]) -> str:
    last = request["messages"][-1]
    return str(last.get("content") or "") if last["role"] == "user" else ""


def messages_of(c: Container, agent_id: int) -> list[Message]:
    with Session(c.engine) as s:
        return list(s.exec(select(Message).where(Message.agent_id == agent_id).order_by(col(Message.id))).all())


def test_turns_of_two_agents_overlap_on_sqlite(sqlite_box: Container, fake: FakeOpenAI) -> None:
    c = sqlite_box
    started: dict[str, float] = {}

    def answer(request: dict[str, Any]) -> Any:
        text = last_input(request)
        for who in ("first", "second"):
            if who in text:
                started.setdefault(who, time.monotonic())
        return delay(1.5, tool_call("send_message", message="Done."))

    fake.default = answer
    a, b = (int(c.agents.open("local", n).id or 0) for n in ("one", "two"))
    futures = [c.agents.submit(a, Incoming("the first question", ANN)),
               c.agents.submit(b, Incoming("the second question", BOB))]
    ended = []
    for f in futures:
        assert f.result(timeout=60).replies == ["Done."]
        ended.append(time.monotonic())
    # Each turn asked the model before the other one had landed: neither waited for the other's transaction.
    assert max(started.values()) < min(ended)
    assert [m.content for m in messages_of(c, a) if m.role == "user"] == ["the first question"]


def test_a_quick_turn_lands_while_a_long_turn_waits_for_the_model(sqlite_box: Container, fake: FakeOpenAI) -> None:
    c = sqlite_box
    asked, release = threading.Event(), threading.Event()

    def answer(request: dict[str, Any]) -> Any:
        if "slow" in last_input(request):
            asked.set()
            release.wait(60)
        return tool_call("send_message", message="Done.")

    fake.default = answer
    slow, quick = (int(c.agents.open("local", n).id or 0) for n in ("slow", "quick"))
    c.agents.send(slow, Incoming("warm up", ANN))  # history, and a person block, before the long turn
    long_turn = c.agents.submit(slow, Incoming("a slow question", ANN))
    try:
        assert asked.wait(30)
        result = c.agents.send(quick, Incoming("a quick question", BOB))
        assert not result.failed and result.replies == ["Done."]
        assert not long_turn.done()  # the quick turn landed while the long one was still waiting on the model
        assert [m.content for m in messages_of(c, quick) if m.role == "user"] == ["a quick question"]
        assert "a slow question" not in [m.content for m in messages_of(c, slow)]  # nothing half-written
    finally:
        release.set()
    assert long_turn.result(timeout=60).replies == ["Done."]
    assert "a slow question" in [m.content for m in messages_of(c, slow)]


def test_a_failed_turn_leaves_no_messages_and_no_blocks(box: Container, fake: FakeOpenAI) -> None:
    agent_id = int(box.agents.open("local", "fails").id or 0)
    fake.script(reply(tool_calls=[("core_memory_append", {"name": "human", "content": "Bob likes tea.",
                                                          "request_heartbeat": True})]))
    bad = error(500, "upstream exploded", retry_after=0.01)
    fake.script(bad, bad, bad)
    result = box.agents.send(agent_id, Incoming("I am Bob and I like tea.", BOB))
    assert result.failed
    assert messages_of(box, agent_id) == []
    with Session(box.engine) as s:
        labels = s.exec(select(Block.label).where(Block.agent_id == agent_id)).all()
    assert list(labels) == ["persona"]


def test_two_turns_of_one_agent_landing_at_once_keep_both_edits(box: Container, fake: FakeOpenAI) -> None:
    """Two turns run outside the agent's queue, as two processes would: both append to one block."""
    agent_id = int(box.agents.open("local", "shared").id or 0)

    def answer(request: dict[str, Any]) -> Any:
        text = last_input(request)
        for fact in ("likes tea", "likes jazz"):
            if fact in text:  # the first step of a turn: edit, after a pause so that the turns overlap
                return delay(0.5, tool_call("core_memory_append", name="persona", content=f"Ann {fact}.",
                                            request_heartbeat=True))
        return tool_call("send_message", message="Noted.")

    fake.default = answer
    box.agents.send(agent_id, Incoming("Hello", ANN))  # Ann's block exists: the turns meet only at the edit
    start = threading.Barrier(2)
    results: list[Any] = []

    def turn(text: str) -> None:
        start.wait()
        results.append(box.agents._turn(agent_id, Incoming(text, ANN), None))

    threads = [threading.Thread(target=turn, args=(t,)) for t in ("Ann likes tea", "Ann likes jazz")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.replies for r in results] == [["Noted."], ["Noted."]]
    with Session(box.engine) as s:
        persona = s.exec(select(Block).where(Block.agent_id == agent_id, Block.label == "persona")).one()
        person = s.exec(select(func.count()).select_from(Block).where(Block.label == ANN.label)).one()
    assert "Ann likes tea." in persona.value and "Ann likes jazz." in persona.value
    assert person == 1
    # Each turn's messages are one contiguous block: every tool call is followed by its result.
    rows = messages_of(box, agent_id)
    for n, m in enumerate(rows):
        if m.role == "assistant" and m.tool_calls:
            ids = [call["id"] for call in json.loads(m.tool_calls)]
            assert [r.tool_call_id for r in rows[n + 1:n + 1 + len(ids)]] == ids
