"""Core, recall and archival memory as the agent uses them through its tools: per-person blocks, archival
paging with true totals, attach by reference, detach, the source filter, and deleting a source."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.loading.inputs import InputFile
from agent.loop import Incoming
from agent.memory.core import Speaker
from bot.container import Container
from tests.conftest import make_settings
from tests.fakes import FakeOpenAI, reply, tool_call

ANN = Speaker("U1", "Ann")
BOB = Speaker("U2", "Bob")
PAGE_LINE = re.compile(r"Showing (\d+)-(\d+) of (\d+) results \(page (\d+)/(\d+)\)")



@pytest.fixture
def box(home: Path, embedder: Any, fake: FakeOpenAI) -> Iterator[Container]:
    settings = make_settings(home, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="test", MEMBOT_LLM_MODEL="fake-model")
    with Container(settings, embedder=embedder) as c:
        yield c


def new_agent(c: Container, name: str = "mem") -> int:
    return int(c.agents.open("local", name).id or 0)


def load_texts(c: Container, source: str, texts: dict[str, str]) -> None:
    report = c.loader.load("local", source, [InputFile.from_bytes(n, t.encode()) for n, t in texts.items()])
    assert report.passages == len(texts), report.summary()


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]


def search_turn(c: Container, fake: FakeOpenAI, agent_id: int, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    """One turn in which the model runs each archival_memory_search call in turn, then replies.
    Returns the tool results the model received, in order."""
    fake.script(*[tool_call("archival_memory_search", request_heartbeat=True, **args) for args in calls],
                tool_call("send_message", message="Here is what I found."))
    first = len(fake.chat_requests)
    result = c.agents.send(agent_id, Incoming("Search, please.", ANN))
    assert result.replies == ["Here is what I found."], result
    last = fake.chat_requests[first + len(calls)]
    return tool_results(last)[-len(calls):]


# core memory: one block per person -----------------------------------------------------------------------
def in_view(request: dict[str, Any]) -> tuple[str, str]:
    """The system prompt, and the speaking person's block sent with the turn's input."""
    return request["messages"][0]["content"], json.loads(request["messages"][-1]["content"]).get("human", "")


def test_each_speaker_has_their_own_human_block(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.script(tool_call("core_memory_append", name="human", content="Ann is allergic to peanuts.",
                          request_heartbeat=True),
                tool_call("send_message", message="Noted, Ann."))
    box.agents.send(agent_id, Incoming("I'm allergic to peanuts.", ANN))
    fake.script(tool_call("core_memory_append", name="human", content="Bob collects stamps.", request_heartbeat=True),
                tool_call("send_message", message="Noted, Bob."))
    box.agents.send(agent_id, Incoming("I collect stamps.", BOB))

    blocks = {b.label: b.value for b in box.agents.memory(agent_id).blocks}
    assert "Ann is allergic to peanuts." in blocks["person:U1"] and "Bob" not in blocks["person:U1"]
    assert "Bob collects stamps." in blocks["person:U2"] and "peanuts" not in blocks["person:U2"]

    fake.reset()
    box.agents.send(agent_id, Incoming("What do I collect?", BOB))
    # The speaker's block arrives with their message (the system prompt stays the same whoever speaks).
    system, human = in_view(fake.chat_requests[0])
    assert "Bob collects stamps." in human and 'name="Bob"' in human
    assert "peanuts" not in system + human and 'name="Ann"' not in system + human
    fake.reset()
    box.agents.send(agent_id, Incoming("And me?", ANN))
    system, human = in_view(fake.chat_requests[0])
    assert "Ann is allergic to peanuts." in human and "stamps" not in system + human
    # The other person's words stay in the shared history, with who said them.
    users = [json.loads(m["content"]) for m in fake.chat_requests[0]["messages"] if m["role"] == "user"]
    assert {"Bob", "Ann"} <= {u.get("from") for u in users}


def test_a_person_block_can_be_named_and_over_limit_edits_fail(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    box.agents.send(agent_id, Incoming("Hi, I'm Bob.", BOB))
    fake.script(
        tool_call("core_memory_append", name="Bob", content="Bob is Ann's colleague.", request_heartbeat=True),
        tool_call("core_memory_append", name="human", content="x" * 2100, request_heartbeat=True),
        tool_call("send_message", message="OK."),
    )
    box.agents.send(agent_id, Incoming("Bob works with me.", ANN))
    blocks = {b.label: b.value for b in box.agents.memory(agent_id).blocks}
    assert "Bob is Ann's colleague." in blocks["person:U2"] and "colleague" not in blocks["person:U1"]
    over = tool_results(fake.chat_requests[-1])[-1]
    assert over["status"] == "Failed" and "Exceeds 2000 character limit" in over["message"]


# archival memory: paging, provenance, attach by reference -------------------------------------------------
def test_archival_paging_reports_true_totals(box: Container, fake: FakeOpenAI) -> None:
    load_texts(box, "zoo", {f"note{n:02}.txt": f"Zebra enclosure log {n}: the zebra named Stripe{n} ate hay."
                            for n in range(13)})
    agent_id = new_agent(box)
    box.agents.attach(agent_id, "zoo")
    page1, page2, past = search_turn(box, fake, agent_id, {"query": "zebra enclosure"},
                                     {"query": "zebra enclosure", "page": 2}, {"query": "zebra enclosure", "page": 4})
    assert page1["status"] == page2["status"] == past["status"] == "OK"
    first = PAGE_LINE.search(page1["message"])
    assert first is not None and first.groups() == ("1", "5", "13", "1", "3")
    second = PAGE_LINE.search(page2["message"])
    assert second is not None and second.groups() == ("6", "10", "13", "2", "3")
    names1 = set(re.findall(r"Stripe\d+", page1["message"]))
    names2 = set(re.findall(r"Stripe\d+", page2["message"]))
    assert len(names1) == len(names2) == 5 and not names1 & names2
    assert "zoo, note" in page1["message"]  # provenance: the source and the file
    assert past["message"] == "Page 4 is past the end: 13 results in 3 page(s)."


def test_attach_is_by_reference_and_detach_takes_effect_at_once(box: Container, fake: FakeOpenAI) -> None:
    load_texts(box, "recipes", {"soup.txt": "Tomato soup: simmer tomatoes with basil for twenty minutes."})
    load_texts(box, "manuals", {"pump.txt": "Pump manual: error code E-4417 means the impeller is blocked."})
    agent_id = new_agent(box)
    own = box.passages.agent_collection(agent_id)
    for name in ("recipes", "manuals"):
        assert box.agents.attach(agent_id, name)[1] is True
    assert box.agents.attach(agent_id, "manuals")[1] is False  # attaching twice is harmless
    assert box.agents.memory(agent_id).archival == 0  # nothing was copied into the agent's own store
    assert not box.passages.exists(own) or box.passages.count(own) == 0

    (both,) = search_turn(box, fake, agent_id, {"query": "E-4417 impeller"})
    assert "E-4417" in both["message"] and "manuals, pump.txt" in both["message"]
    assert "Attached sources: manuals, recipes." in fake.chat_requests[-1]["messages"][0]["content"]

    box.agents.detach(agent_id, "manuals")
    (after,) = search_turn(box, fake, agent_id, {"query": "E-4417 impeller"})
    assert "impeller is blocked" not in after["message"]
    assert "Attached sources: recipes." in fake.chat_requests[-1]["messages"][0]["content"]
    assert all(h.label != "manuals" for h in box.agents.search_archival(agent_id, "E-4417 impeller").hits)


def test_search_one_source_of_several(box: Container, fake: FakeOpenAI) -> None:
    load_texts(box, "alpha", {"a.txt": "Project Falcon launch checklist: fuel, wings, radio."})
    load_texts(box, "beta", {"b.txt": "Project Falcon budget: forty thousand euros for the radio."})
    agent_id = new_agent(box)
    box.agents.attach(agent_id, "alpha")
    box.agents.attach(agent_id, "beta")
    fake.script(tool_call("archival_memory_insert", content="Project Falcon: Ann leads the radio work.",
                          request_heartbeat=True), tool_call("send_message", message="Saved."))
    box.agents.send(agent_id, Incoming("Remember that I lead the Falcon radio work.", ANN))

    everything, only_beta, only_own, unknown = search_turn(
        box, fake, agent_id, {"query": "Project Falcon radio"}, {"query": "Project Falcon radio", "source": "beta"},
        {"query": "Project Falcon radio", "source": "archival memory"},
        {"query": "Project Falcon radio", "source": "gamma"})
    assert "of 3 results" in everything["message"]
    assert "of 1 results" in only_beta["message"] and "forty thousand" in only_beta["message"]
    assert "launch checklist" not in only_beta["message"]
    assert "of 1 results" in only_own["message"] and "Ann leads" in only_own["message"]
    assert unknown["status"] == "Failed" and "gamma" in unknown["message"]
    assert "alpha" in unknown["message"] and "beta" in unknown["message"]


def test_deleting_a_source_detaches_it_everywhere(box: Container, fake: FakeOpenAI) -> None:
    load_texts(box, "handbook", {"rules.txt": "Handbook rule 7: the office closes at six on Fridays."})
    first, second = new_agent(box, "one"), new_agent(box, "two")
    for agent_id in (first, second):
        box.agents.attach(agent_id, "handbook")
        (hit,) = search_turn(box, fake, agent_id, {"query": "office closes Fridays"})
        assert "rule 7" in hit["message"]

    box.sources.delete("local", "handbook")
    for agent_id in (first, second):
        assert box.agents.attached(agent_id) == []
        (hit,) = search_turn(box, fake, agent_id, {"query": "office closes Fridays"})
        assert "rule 7" not in hit["message"]
        assert "Attached sources: none." in fake.chat_requests[-1]["messages"][0]["content"]

    # A new source with the same name is a different source: not attached, and never served from a stale cache.
    load_texts(box, "handbook", {"rules.txt": "Handbook rule 8: the office opens at nine on Mondays."})
    assert box.agents.attached(first) == []
    box.agents.attach(first, "handbook")
    (hit,) = search_turn(box, fake, first, {"query": "office closes Fridays"})
    assert "rule 8" in hit["message"] and "rule 7" not in hit["message"]


def test_insert_then_search_own_archival_memory(box: Container, fake: FakeOpenAI) -> None:
    agent_id = new_agent(box)
    fake.script(reply("Saving.", [("archival_memory_insert", {"content": "The Wi-Fi password is "
                                                              "teal-otter-42.", "request_heartbeat": True})]),
                tool_call("send_message", message="Saved."))
    box.agents.send(agent_id, Incoming("The Wi-Fi password is teal-otter-42.", ANN))
    assert box.agents.memory(agent_id).archival == 1
    (hit,) = search_turn(box, fake, agent_id, {"query": "teal-otter-42"})
    assert "of 1 results (page 1/1)" in hit["message"] and "teal-otter-42" in hit["message"]
    assert "archival memory; inserted" in hit["message"]


def test_a_deleted_agents_memories_never_reach_a_new_agent(box: Container, fake: FakeOpenAI) -> None:
    old = new_agent(box, "old")
    fake.script(tool_call("archival_memory_insert", content="The old channel's secret is violet-heron.",
                          request_heartbeat=True), tool_call("send_message", message="Saved."))
    box.agents.send(old, Incoming("Remember our secret: violet-heron.", ANN))
    (hit,) = search_turn(box, fake, old, {"query": "secret"})
    assert "violet-heron" in hit["message"]
    box.agents.delete("local", "old")

    new = new_agent(box, "new")  # SQLite may give it the deleted agent's id
    fake.script(tool_call("archival_memory_insert", content="The new channel's secret is amber-fox.",
                          request_heartbeat=True), tool_call("send_message", message="Saved."))
    box.agents.send(new, Incoming("Remember our secret: amber-fox.", ANN))
    (hit,) = search_turn(box, fake, new, {"query": "secret"})
    assert "amber-fox" in hit["message"] and "violet-heron" not in hit["message"]
