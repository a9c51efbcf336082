"""The console adapter: the original MemGPT walkthrough end to end as a subprocess, and every in-chat command."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.console import HELP, Console
from agent.loading.inputs import InputFile
from bot.container import Container
from tests.conftest import PAPER, llm_env, make_settings, run_cli
from tests.fakes import FakeOpenAI, error, reply, tool_call

PAGE_LINE = re.compile(r"Showing 1-(\d+) of (\d+) results \(page 1/(\d+)\)")
QUESTION = "The paper I loaded into your archival memory is called MemGPT. Can you tell me more about it?"




def last_tool_result(request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(next(m for m in reversed(request["messages"]) if m["role"] == "tool")["content"])


def quote_search(request: dict[str, Any]) -> Any:
    """The model's second step: it read the search results and replies with the first one, citing it."""
    result = last_tool_result(request)
    first = next(line for line in result["message"].splitlines() if line.startswith("[1]"))
    return reply("I found it; answering with citations.", [("send_message", {"message": f"From the paper: {first}"})])


def test_memgpt_walkthrough_through_the_console(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    loaded = run_cli(home, "load", "directory", "--name", "memgpt_research_paper", "--input-files", str(PAPER))
    assert loaded.returncode == 0, loaded.stderr
    assert re.search(r"\b13 documents\b", loaded.stdout), loaded.stdout

    fake.script(reply("Searching my archival memory for the paper.",
                      [("archival_memory_search", {"query": "MemGPT", "request_heartbeat": True})]),
                quote_search)
    chat = run_cli(home, "run", "--agent", "doc", "--persona", "memgpt_doc", "--first",
                   env=llm_env(fake), input=f"/attach memgpt_research_paper\n{QUESTION}\n", timeout=300)
    assert chat.returncode == 0, chat.stderr
    assert fake.errors == []
    assert "Attached `memgpt_research_paper` (63 passages from 1 file(s))" in chat.stdout

    first, second = fake.chat_requests
    assert json.loads(first["messages"][-1]["content"])["message"] == QUESTION
    assert "document assistant" in first["messages"][0]["content"]  # the memgpt_doc persona
    assert "Attached sources: memgpt_research_paper." in first["messages"][0]["content"]
    result = last_tool_result(second)
    assert result["status"] == "OK"
    assert "memgpt_paper.pdf" in result["message"] and "page" in result["message"]
    shown = PAGE_LINE.search(result["message"])
    assert shown is not None, result["message"][:300]
    count, total, pages = (int(g) for g in shown.groups())
    assert count == 5 and total > 5 and pages == math.ceil(total / 5)

    reply_line = next(line for line in chat.stdout.splitlines() if line.startswith("🤖"))
    assert reply_line.startswith("🤖 From the paper: [1] (memgpt_research_paper, memgpt_paper.pdf page ")
    assert "💭 Searching my archival memory" in chat.stdout

    # The total is the true one: the same search through the service counts the same.
    with Container(make_settings(home), embedder=embedder) as c:
        agent = c.agents.get("local", "doc")
        assert c.agents.search_archival(int(agent.id or 0), "MemGPT").total == total
        assert c.agents.memory(int(agent.id or 0)).archival == 0  # attached by reference, nothing copied


# in-chat commands ------------------------------------------------------------------------------------------
@pytest.fixture
def console(home: Path, embedder: Any, fake: FakeOpenAI) -> Iterator[tuple[Console, list[str]]]:
    settings = make_settings(home, **llm_env(fake))
    with Container(settings, embedder=embedder) as c:
        c.loader.load("local", "notes", [InputFile.from_bytes("ops.txt", b"Runbook: restart the queue with qctl.")])
        c.loader.load("local", "other", [InputFile.from_bytes("x.txt", b"Nothing to see here.")])
        agent = c.agents.open("local", "term")
        lines: list[str] = []
        yield Console(c.chat, agent.name, "local", interactive=False, out=lines.append), lines


def test_help_unknown_and_exit(console: tuple[Console, list[str]], fake: FakeOpenAI) -> None:
    chat, out = console
    chat.run(["/help", "/frobnicate now", "/exit", "This line is never sent."])
    assert out[0] == HELP
    assert out[1].startswith("Unknown command /frobnicate.") and HELP in out[1]
    assert fake.chat_requests == []


def test_sources_attach_detach_search_and_memory(console: tuple[Console, list[str]], fake: FakeOpenAI) -> None:
    chat, out = console
    chat.run(["/sources", "/attach", "/attach notes", "/sources"])
    assert any(re.fullmatch(r"\s*notes\s+1 passages", line) for line in out[:2])
    assert "Give the source's name: /attach NAME" in out  # piped input never waits on a prompt
    assert "Attached `notes` (1 passages from 1 file(s)) to this channel's agent." in out
    assert any(re.fullmatch(r"\s*notes\s+1 passages\s+attached", line) for line in out)
    out.clear()
    chat.run(["/search restart the queue"])
    assert out[0].startswith("Showing 1-1 of 1 results (page 1/1):") and "notes, ops.txt" in out[0]
    assert "qctl" in out[0]
    out.clear()
    chat.run(["/search", "/detach", "/detach nothing"])
    assert out == ["⚠️  Usage: /search QUERY", "⚠️  Usage: /detach SOURCE",
                   "⚠️  No source named 'nothing' is attached. Attached: notes."]
    out.clear()
    fake.script(tool_call("core_memory_append", name="human", content="Runs the ops team.", request_heartbeat=True),
                tool_call("send_message", message="Got it."))
    chat.run(["I run the ops team.", "/memory", "/detach notes", "/search restart the queue"])
    assert "🤖 Got it." in out
    text = "\n".join(out)
    assert "[persona]" in text and "Runs the ops team." in text
    assert "Attached sources: notes." in text and "Recall memory: " in text
    assert "Detached `notes` from this channel's agent." in out
    assert out[-1].startswith("No archival results")


def test_pop_retry_rethink_rewrite(console: tuple[Console, list[str]], fake: FakeOpenAI) -> None:
    chat, out = console
    fake.script(reply("She wants a haiku.", [("send_message", {"message": "Leaves fall in the rain."})]),
                reply("Second try.", [("send_message", {"message": "Snow on the mountain."})]))
    chat.run(["Write me a haiku.", "/retry"])
    assert "🤖 Leaves fall in the rain." in out and "🤖 Snow on the mountain." in out
    retried = fake.chat_requests[1]
    said = [json.loads(m["content"]).get("message") for m in retried["messages"] if m["role"] == "user"]
    assert said == ["Write me a haiku."]  # the first attempt was removed before asking again
    assert "Leaves fall" not in json.dumps(retried)

    chat.run(["/rethink The person likes winter poems.", "/rewrite Snow falls on the peak."])
    assert "Replaced the last inner thought." in out and "Replaced the last reply." in out
    fake.script(tool_call("send_message", message="Thanks!"))
    chat.run(["Lovely."])
    history = fake.chat_requests[-1]["messages"]
    assistant = [m for m in history if m["role"] == "assistant"]
    assert assistant[0]["content"] == "The person likes winter poems."
    assert json.loads(assistant[0]["tool_calls"][0]["function"]["arguments"]) == {"message": "Snow falls on the peak."}
    assert "Snow on the mountain" not in json.dumps(history)

    before = chat.service.memory(chat.agent_id).messages
    out.clear()
    chat.run(["/pop"])
    assert out == ["Removed the last exchange (3 messages)."]
    assert chat.service.memory(chat.agent_id).messages == before - 3
    chat.run(["Next."])
    assert "Lovely." not in json.dumps(fake.chat_requests[-1]["messages"])
    out.clear()
    chat.run(["/pop", "/pop", "/pop", "/retry", "/rethink", "/rewrite"])
    assert out[-4:] == ["Nothing to remove.", "⚠️  There is no message to retry yet.",
                        "⚠️  Usage: /rethink NEW THOUGHT", "⚠️  Usage: /rewrite NEW REPLY"]


def test_a_failed_turn_is_shown_and_nothing_is_kept(console: tuple[Console, list[str]], fake: FakeOpenAI) -> None:
    chat, out = console
    fake.script(error(503, "overloaded", headers={"x-should-retry": "false"}))
    chat.run(["Are you there?"])
    assert out == ["⚠️  The model endpoint answered HTTP 503: overloaded. Your message was not processed; please send "
                   "it again."]
    assert chat.service.memory(chat.agent_id).messages == 0
    chat.run(["/retry"])
    assert out[-1] == "⚠️  There is no message to retry yet."
