"""The durable inbox: an event is accepted once by all processes; turns of one agent in two processes (two
containers on one database) never overlap and land in the order the questions were accepted, with every tool
call followed by its result and no core memory edit lost; a question whose process died, or that shutdown
abandoned, is answered with an apology exactly once. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from agent.chat import Channel
from agent.db.models import Block, Message
from agent.inbox import APOLOGY, DONE, REPORTED, SKIPPED, Inbox, LeaseLost, Question
from agent.memory.core import Speaker
from agent.schedule.delivery import DeliveryRegistry, Target
from agent.turns import Incoming
from bot.container import Container
from tests.conftest import make_settings
from tests.fakes import FakeOpenAI, delay, reply, tool_call
from tests.fakes.timed import Outbox

ANN = Speaker("U1", "Ann")
PLATFORM = "test"
PLACE = Channel(f"{PLATFORM}:W1", "C1")


@pytest.fixture
def boxes(tmp_path: Path, embedder: Any, fake: FakeOpenAI, database: str) -> Iterator[Any]:
    """A function name -> Container: a membot process of its own (home, pools, inbox owner) on the shared
    database, with an Outbox as the delivery of the test platform."""
    opened: list[Container] = []

    def make(name: str, **env: Any) -> Container:
        home = tmp_path / name
        home.mkdir(exist_ok=True)
        settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test",
                                 MEMBOT_LLM_MODEL="fake-model", MEMBOT_LLM_RETRIES=0, MEMBOT_DATABASE_URL=database,
                                 MEMBOT_INBOX_LEASE_SECONDS=2, **env)
        box = Container(settings, embedder=embedder)
        box.deliveries.register(PLATFORM, Outbox())
        opened.append(box)
        return box

    yield make
    for box in reversed(opened):
        box.close()


def question(key: str, text: str, confirmed: bool = True) -> Question:
    return Question(key, PLACE.scope, PLACE.agent_name, Incoming(text, ANN), Target(PLACE.scope, "C1", "t1"),
                    confirmed)


def outbox(box: Container) -> Outbox:
    return box.deliveries._by_platform[PLATFORM]  # type: ignore[return-value]


def asked(request: dict[str, Any]) -> str:
    """The question (q0, q1...) of the turn this request belongs to: the latest person's message in it."""
    for message in reversed(request["messages"]):
        if message["role"] == "user" and '"type": "user_message"' in str(message.get("content")):
            return str(json.loads(message["content"])["message"])
    return ""


def remembering_model(request: dict[str, Any]) -> Any:
    """Each question: append a line to the persona block (with a heartbeat), then answer "re: <question>"."""
    last = request["messages"][-1]
    q = asked(request)
    if last["role"] == "user" and '"type": "user_message"' in str(last.get("content")):
        return delay(0.3, tool_call("core_memory_append", name="persona", content=f"fact of {q}",
                                    request_heartbeat=True))
    return tool_call("send_message", message=f"re: {q}")


def test_an_event_is_accepted_once_by_all_processes(boxes: Any) -> None:
    a, b = boxes("a"), boxes("b")
    first = a.chat.take(question("test:ev1", "hello?"))
    assert first is not None
    assert b.chat.take(question("test:ev1", "hello?")) is None  # the same event delivered to the other process
    assert a.chat.take(question("test:ev1", "hello?")) is None  # or again to the first (a retry)
    a.chat.settle(first)
    assert a.agents.inbox.status(first) == SKIPPED


def test_one_agent_in_two_processes_answers_in_order_one_turn_at_a_time(boxes: Any, fake: FakeOpenAI) -> None:
    fake.default = remembering_model
    a, b = boxes("a"), boxes("b")
    a.chat.agent(PLACE)  # the channel's agent exists before the race (first contact is tested elsewhere)
    futures = []
    for n in range(6):  # accepted alternately by the two processes, as a load balancer would spread them
        box = (a, b)[n % 2]
        futures.append(box.chat.accept(question(f"test:q{n}", f"q{n}"), lambda ticket, box=box, n=n:
                                       box.chat.submit(PLACE, ANN, f"q{n}", ticket=ticket).result()))
    results = [f.result(timeout=120) for f in futures if f is not None]
    assert [r.replies for r in results] == [[f"re: q{n}"] for n in range(6)]

    agent = a.agents.get(PLACE.scope, PLACE.agent_name)
    with Session(a.engine) as s:
        rows = list(s.exec(select(Message).where(Message.agent_id == agent.id).order_by(col(Message.id))).all())
        persona = s.exec(select(Block).where(Block.agent_id == agent.id, Block.label == "persona")).one()
    asked_order = [m.content for m in rows if m.role == "user" and m.kind == "message"]
    assert asked_order == [f"q{n}" for n in range(6)]
    assert_well_formed(rows)
    assert all(f"fact of q{n}" in persona.value for n in range(6))  # no edit lost across the processes
    # Each turn saw the previous one whole: it ran after that turn landed, in whichever process.
    first_requests = {}
    for request in fake.chat_requests:
        first_requests.setdefault(asked(request), request)
    for n in range(1, 6):
        seen = json.dumps(first_requests[f"q{n}"]["messages"])
        assert f"re: q{n - 1}" in seen, f"q{n} started before q{n - 1} had landed"


def assert_well_formed(rows: list[Message]) -> None:
    """Every assistant tool call is followed at once by its results, in order."""
    for i, m in enumerate(rows):
        if m.role == "assistant" and m.tool_calls:
            ids = [c["id"] for c in json.loads(m.tool_calls)]
            after = [r.tool_call_id for r in rows[i + 1:i + 1 + len(ids)]]
            assert after == ids, f"tool calls {ids} are followed by {after}"


def test_a_dead_process_question_is_answered_once(boxes: Any, database: str) -> None:
    a, b = boxes("a"), boxes("b")
    dead = Inbox(a.engine, DeliveryRegistry(), lease=1)
    dead.stop()  # it renews nothing: a process that died (kill -9) right after accepting
    ticket = dead.accept(question("test:lost", "What is   the\nplan for Friday?"))
    assert ticket is not None
    assert a.agents.inbox.take_over() == []  # its lease has not run out yet
    time.sleep(1.2)
    taken: list[list[int]] = []
    racers = [threading.Thread(target=lambda box=box: taken.append(box.agents.inbox.take_over())) for box in (a, b)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
    assert sorted(taken) == [[], [ticket]]
    texts = outbox(a).texts + outbox(b).texts
    assert texts == [APOLOGY.format(excerpt="What is the plan for Friday?")]
    posted = (outbox(a).items + outbox(b).items)[0][0]
    assert posted == Target(PLACE.scope, "C1", "t1")
    assert a.agents.inbox.status(ticket) == REPORTED
    assert a.agents.inbox.take_over() == [] and b.agents.inbox.take_over() == []


def test_an_unconfirmed_event_of_a_dead_process_is_dropped_silently(boxes: Any) -> None:
    a = boxes("a")
    dead = Inbox(a.engine, DeliveryRegistry(), lease=1)
    dead.stop()
    ticket = dead.accept(question("test:chatter", "just chatting in a thread", confirmed=False))
    assert ticket is not None
    time.sleep(1.2)
    assert a.agents.inbox.take_over() == [ticket]
    assert outbox(a).texts == [] and a.agents.inbox.status(ticket) == SKIPPED


def test_a_turn_whose_question_was_taken_over_does_not_land(boxes: Any) -> None:
    a = boxes("a")
    dead = Inbox(a.engine, DeliveryRegistry(), lease=1)
    dead.stop()
    ticket = dead.accept(question("test:slow", "slow one"))
    assert ticket is not None
    assert dead.claim(ticket, PLACE.scope, PLACE.agent_name, Incoming("slow one"), Target(PLACE.scope)) == ticket
    time.sleep(1.2)  # it stalls past its lease
    assert a.agents.inbox.take_over() == [ticket]
    with Session(a.engine) as s, pytest.raises(LeaseLost):
        dead.finish(s, ticket)


def test_a_turn_abandoned_at_shutdown_is_reported_at_the_next_start(boxes: Any, fake: FakeOpenAI) -> None:
    a = boxes("a", MEMBOT_SHUTDOWN_GRACE=0.5)
    fake.script(delay(30, tool_call("send_message", message="too late")))
    a.chat.agent(PLACE)
    queued = a.chat.accept(question("test:long", "a long question"),
                           lambda ticket: a.chat.submit(PLACE, ANN, "a long question", ticket=ticket).result())
    assert queued is not None
    fake.wait_for_requests(1, timeout=60)
    a.close()  # the grace runs out: the turn is abandoned, its question released for the next start

    b = boxes("b")
    assert b.agents.inbox.take_over() != []
    assert outbox(b).texts == [APOLOGY.format(excerpt="a long question")]
    agent = b.agents.get(PLACE.scope, PLACE.agent_name)
    with Session(b.engine) as s:
        assert s.exec(select(Message).where(Message.agent_id == agent.id)).all() == []  # nothing landed


def test_a_turn_marks_its_question_answered_when_it_lands(boxes: Any, fake: FakeOpenAI) -> None:
    a = boxes("a")
    fake.script(tool_call("send_message", message="hi Ann"))
    tickets: list[int] = []

    def handle(ticket: int) -> Any:
        tickets.append(ticket)
        return a.chat.submit(PLACE, ANN, "hello", ticket=ticket).result()

    queued = a.chat.accept(question("test:hello", "hello"), handle)
    assert queued is not None and queued.result(timeout=60).replies == ["hi Ann"]
    assert a.agents.inbox.status(tickets[0]) == DONE
    fake.script(reply("no tools"))  # a turn without a ticket (console, timed event) gets a row of its own
    agent = a.chat.agent(PLACE)
    a.agents.send(int(agent.id or 0), Incoming("plain", ANN))
    with a.engine.connect() as conn:
        from agent.inbox import ROWS

        statuses = conn.execute(select(ROWS.c.status, ROWS.c.ordered).order_by(ROWS.c.id)).all()
    assert [tuple(r) for r in statuses] == [(DONE, True), (DONE, False)]


def test_edits_in_another_process_wait_for_the_running_turn(boxes: Any, fake: FakeOpenAI) -> None:
    """pop, a rewrite of the last reply and a memory panel save in process b, while a turn of the agent runs in
    process a: each waits for that turn to land and then applies to it (the last exchange), never to the one
    before."""
    from agent.home import edit_block

    fake.default = remembering_model
    a, b = boxes("a"), boxes("b")
    agent_id = int(a.chat.agent(PLACE).id or 0)
    a.chat.submit(PLACE, ANN, "q0").result(timeout=60)

    def while_a_thinks(n: int, edit: Callable[[], Any]) -> Any:
        before = len(fake.chat_requests)
        fake.script(delay(1.5))  # a's turn claims the agent, then waits on the model
        running = a.chat.submit(PLACE, ANN, f"q{n}")
        fake.wait_for_requests(before + 1, timeout=30)
        result = edit()
        assert running.done() or running.result(timeout=5)  # b's edit came after the turn had landed
        return result

    removed = while_a_thinks(1, lambda: b.agents.pop(agent_id))
    with Session(a.engine) as s:
        rows = list(s.exec(select(Message).where(Message.agent_id == agent_id).order_by(col(Message.id))).all())
    assert [m.content for m in rows if m.role == "user" and m.kind == "message"] == ["q0"]  # q1's exchange went
    assert removed >= 4  # q1, its memory edit and result, its reply and result
    assert_well_formed(rows)

    while_a_thinks(2, lambda: b.agents.rewrite(agent_id, "rewritten"))
    with Session(a.engine) as s:
        [edited] = s.exec(select(Message).where(Message.agent_id == agent_id, Message.role == "assistant",
                                                col(Message.tool_calls).contains("rewritten"))).all()
        q2 = s.exec(select(Message).where(Message.agent_id == agent_id, Message.content == "q2")).one()
    assert (edited.id or 0) > (q2.id or 0)  # the reply of q2's turn, not of q0's

    while_a_thinks(3, lambda: edit_block(b.chat, PLACE, "persona", "set by hand"))
    with Session(a.engine) as s:
        persona = s.exec(select(Block).where(Block.agent_id == agent_id, Block.label == "persona")).one()
    assert persona.value == "set by hand"  # saved after q3's turn appended its fact, not before
