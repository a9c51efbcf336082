"""The agent commands of the CLI, run as a person would: `membot run` without a model, persona and human
presets, and listing, showing and deleting agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.loop import Incoming
from agent.memory.core import Speaker
from bot.container import Container
from tests.conftest import llm_env, make_settings, run_cli
from tests.fakes import FakeOpenAI, tool_call


def test_run_without_a_model_says_what_to_set(home: Path) -> None:
    for args in (["run", "--agent", "helper"], ["run"]):
        done = run_cli(home, *args, input="Hello?\n/help\n", timeout=120)  # piped: must never wait on a prompt
        assert done.returncode != 0
        for needed in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MEMBOT_LLM_MODEL", "Ollama", "vLLM",
                       "http://localhost:11434/v1", "membot configure"):
            assert needed in done.stderr, (needed, done.stderr)
        assert "Traceback" not in done.stderr and "Created agent" not in done.stdout
    listed = run_cli(home, "agents", "list")
    assert listed.returncode == 0 and "No agents yet" in listed.stdout  # nothing was half-created


def test_run_with_piped_input_and_no_agent_name(home: Path, fake: FakeOpenAI) -> None:
    fake.script(tool_call("send_message", message="Welcome aboard!"), tool_call("send_message", message="Hi there."))
    done = run_cli(home, "run", env=llm_env(fake), input="Hello!\n", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Created agent console." in done.stdout
    assert "🤖 Welcome aboard!" in done.stdout and "🤖 Hi there." in done.stdout
    greeting, hello = fake.chat_requests
    assert json.loads(greeting["messages"][-1]["content"])["type"] == "login"  # the greeting a new agent gets
    assert json.loads(hello["messages"][-1]["content"])["message"] == "Hello!"


def test_persona_and_human_presets(home: Path, fake: FakeOpenAI) -> None:
    listed = run_cli(home, "personas", "list")
    assert listed.returncode == 0 and {"sam", "memgpt_doc"} <= set(listed.stdout.split())
    assert "basic" in run_cli(home, "humans", "list").stdout.split()
    assert "document assistant" in run_cli(home, "personas", "show", "memgpt_doc").stdout

    added = run_cli(home, "personas", "add", "pirate", "--text", "I am Captain Byte, a pirate who speaks in rhymes.")
    assert added.returncode == 0 and "Saved persona preset pirate" in added.stdout
    assert (home / "personas" / "pirate.txt").is_file()
    assert "pirate" in run_cli(home, "personas", "list").stdout.split()
    shown = run_cli(home, "personas", "show", "pirate").stdout.strip()
    assert shown == "I am Captain Byte, a pirate who speaks in rhymes."

    from_stdin = run_cli(home, "humans", "add", "sailor", input="The human is a sailor from Porto.\n")
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert run_cli(home, "humans", "show", "sailor").stdout.strip() == "The human is a sailor from Porto."

    missing = run_cli(home, "personas", "show", "ninja")
    assert missing.returncode != 0 and "No persona preset named 'ninja'" in missing.stderr
    assert "pirate" in missing.stderr  # the error lists what exists
    bad = run_cli(home, "personas", "add", "bad name!", "--text", "x")
    assert bad.returncode != 0 and "A preset name is" in bad.stderr
    too_long = run_cli(home, "humans", "add", "long", "--text", "y" * 2500)
    assert too_long.returncode != 0 and "2000" in too_long.stderr

    # A new agent starts with the presets it was given.
    chat = run_cli(home, "run", "--agent", "ship", "--persona", "pirate", "--human", "sailor", "--first",
                   env=llm_env(fake), input="Ahoy!\n", timeout=300)
    assert chat.returncode == 0, chat.stderr
    request = fake.chat_requests[0]
    human = json.loads(request["messages"][-1]["content"])["human"]  # the speaker's block rides with the input
    assert "Captain Byte" in request["messages"][0]["content"] and "sailor from Porto" in human
    unknown = run_cli(home, "run", "--agent", "ship2", "--persona", "ninja", env=llm_env(fake), input="", timeout=300)
    assert unknown.returncode != 0 and "No persona preset named 'ninja'" in unknown.stderr


def test_agents_list_show_delete(home: Path, embedder: Any, fake: FakeOpenAI) -> None:
    from agent.loading.inputs import InputFile

    settings = make_settings(home, **llm_env(fake))
    with Container(settings, embedder=embedder) as c:
        c.loader.load("local", "faq", [InputFile.from_bytes("faq.txt", b"Opening hours: nine to five.")])
        alpha = c.agents.open("local", "alpha")
        c.agents.attach(int(alpha.id or 0), "faq")
        fake.script(tool_call("core_memory_append", name="human", content="Prefers mornings.", request_heartbeat=True),
                    tool_call("send_message", message="Mornings it is."))
        c.agents.send(int(alpha.id or 0), Incoming("I prefer mornings.", Speaker("U7", "Dana")))
        c.agents.open("local", "beta", persona="memgpt_doc")
        c.agents.open("slack:T1", "gamma")

    listed = run_cli(home, "agents", "list")  # no model configured: listing never needs one
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[2:]}
    assert set(rows) == {"alpha", "beta"}
    assert rows["alpha"][1:4] == ["sam", "6", "faq"] and rows["beta"][1:4] == ["memgpt_doc", "0", "-"]
    assert "gamma" in run_cli(home, "agents", "list", "--scope", "slack:T1").stdout

    shown = run_cli(home, "agents", "show", "alpha")
    assert shown.returncode == 0, shown.stderr
    assert "Agent alpha (persona preset sam" in shown.stdout
    assert "[person:U7 (Dana)]" in shown.stdout and "Prefers mornings." in shown.stdout
    assert "Recall memory: 6 messages" in shown.stdout and "Attached sources: faq." in shown.stdout

    missing = run_cli(home, "agents", "show", "zeta")
    assert missing.returncode != 0 and "No agent named 'zeta'." in missing.stderr and "alpha" in missing.stderr

    deleted = run_cli(home, "agents", "delete", "alpha")  # piped: no confirmation prompt
    assert deleted.returncode == 0 and "Deleted agent alpha." in deleted.stdout, deleted.stderr
    after = run_cli(home, "agents", "list").stdout
    assert "alpha" not in after and "beta" in after
    assert run_cli(home, "agents", "delete", "alpha").returncode != 0
    # The source it used is untouched.
    assert "faq" in run_cli(home, "sources", "list").stdout
