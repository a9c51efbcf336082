"""No transaction stays open while the model thinks (PostgreSQL's pg_stat_activity shows none 'idle in
transaction' during a model call), and two turns of one agent that both summarize, landing together as two
processes would, keep both summaries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session

from agent.db.models import Agent
from agent.loop import Incoming
from agent.memory.core import Speaker
from bot.container import Container
from tests.conftest import make_settings
from tests.fakes import FakeOpenAI, delay, reply, tool_call

ANN = Speaker("U1", "Ann")
FILLER = " ".join(["The harbour crane log lists routine maintenance, lubrication and cable checks."] * 12)


def unserialized_turn(c: Container, agent_id: int, incoming: Incoming) -> Any:
    """A turn run straight on the runner, outside its lane and without the inbox's per-agent claim, so that two
    overlap as turns of one agent could before the inbox ordered them: their landings must still keep both."""
    from agent.memory.archival import ArchivalMemory

    svc = c.agents
    with Session(c.engine, expire_on_commit=False, autoflush=False) as s:
        s.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        agent = s.get(Agent, agent_id)
        assert agent is not None
        archival = ArchivalMemory(s, agent, svc.store, svc.searcher, svc.catalog, svc.embedder)
        return svc._runner.run(s, agent, incoming, archival, None, svc.human_preset(agent))


def open_box(home: Path, embedder: Any, fake: FakeOpenAI, **env: Any) -> Container:
    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test",
                             MEMBOT_LLM_MODEL="fake-model", **env)
    return Container(settings, embedder=embedder)


@pytest.fixture
def pg_box(home: Path, embedder: Any, fake: FakeOpenAI, fresh_pg_url: str) -> Iterator[Container]:
    with open_box(home, embedder, fake, MEMBOT_DATABASE_URL=fresh_pg_url) as c:
        yield c


def idle_in_transaction(url: str) -> list[str]:
    """The queries of this database's sessions that sit idle inside a transaction."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            rows = conn.execute(text("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND state = 'idle in transaction' AND pid <> pg_backend_pid()")).all()
        return [r[0] for r in rows]
    finally:
        admin.dispose()


def test_no_transaction_is_open_while_the_model_thinks(pg_box: Container, fake: FakeOpenAI,
                                                       fresh_pg_url: str) -> None:
    c = pg_box
    asked, release = threading.Event(), threading.Event()

    def answer(request: dict[str, Any]) -> Any:
        if not any(m["role"] == "tool" for m in request["messages"]):  # the first step reads and schedules
            return reply(tool_calls=[("conversation_search", {"query": "tea", "request_heartbeat": True}),
                                     ("list_schedules", {}),
                                     ("schedule_message", {"when": "in 2 hours", "text": "tea"})])
        asked.set()
        release.wait(60)
        return tool_call("send_message", message="Done.")

    fake.default = answer
    agent_id = int(c.agents.open("local", "thinker").id or 0)
    turn = c.agents.submit(agent_id, Incoming("tea time?", ANN))
    try:
        assert asked.wait(30), turn.result(timeout=1)
        assert idle_in_transaction(fresh_pg_url) == []
    finally:
        release.set()
    assert turn.result(timeout=60).replies == ["Done."]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_turns_that_summarize_at_once_keep_both_summaries(backend: str, request: pytest.FixtureRequest,
                                                              home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    env = {"MEMBOT_DATABASE_URL": request.getfixturevalue("fresh_pg_url")} if backend == "postgresql" else {}
    summaries: list[str] = []
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> Any:
        if not body.get("tools"):  # the summarizer: a turn's first summary is its own, later ones extend it
            so_far = body["messages"][-1]["content"].split("Summary so far: ", 1)[1].split("\n\nMessages:")[0]
            with lock:
                first = so_far == "(none)" and summaries
                text = summaries.pop(0) if first else f"{so_far} More crane logs."
            return delay(0.5, reply(text))
        return tool_call("send_message", message="Noted.")

    fake.default = answer
    with open_box(home, embedder, fake, MEMBOT_CONTEXT_WINDOW=6000, **env) as c:
        agent_id = int(c.agents.open("local", "logs").id or 0)
        for n in range(3):
            c.agents.send(agent_id, Incoming(f"Crane log {n}: {FILLER}", ANN))
        summaries.extend(["Summary one: the crane logs.", "Summary two: the crane logs."])
        start = threading.Barrier(2)
        results: list[Any] = []

        def turn(question: str) -> None:
            start.wait()
            results.append(unserialized_turn(c, agent_id, Incoming(question, ANN)))

        long = " ".join([FILLER] * 15)  # with the history, over the summarize line at the turn's first call
        threads = [threading.Thread(target=turn, args=(f"Crane log {n}: {long}",)) for n in (3, 4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 2 and all("Noted." in r.replies and not r.failed for r in results)
        with Session(c.engine) as s:
            agent = s.get(Agent, agent_id)
            assert agent is not None
        assert "Summary one" in agent.summary and "Summary two" in agent.summary, agent.summary
