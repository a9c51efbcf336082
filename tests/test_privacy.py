"""Who sees a source, decided in the core for every adapter: a file uploaded in a private channel or a DM is
visible only there (listing, picker and autocomplete names, /attach NAME, the /memory panel and the agent's
archival search); one uploaded in a public channel is the workspace's; the CLI sees everything. Real SQLite,
Milvus Lite and embedder; the fake OpenAI server plays the model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from agent import Channel, ChatCore, InputFile, NotFound, Speaker, channel_home
from agent.db.models import SourceBinding
from bot.container import Container
from tests.conftest import llm_env, make_settings
from tests.fakes import FakeOpenAI, tool_call

SCOPE = "slack:T1"
PUBLIC = Channel(SCOPE, "CGEN")
OTHER_PUBLIC = Channel(SCOPE, "CRANDOM")
SECRET = Channel(SCOPE, "GSECRET", private=True)
DM = Channel(SCOPE, "D1", private_to="U1", private=True)
OTHER_DM = Channel(SCOPE, "D2", private_to="U2", private=True)
PLAN = "Confidential: the acquisition target is ACMECORP, to be announced in March."
DIARY = "Dear diary, today I decided to learn the cello."
HANDBOOK = "Holidays are in August; the office opens at nine."


@pytest.fixture
def c(home: Path, embedder: Any, fake: FakeOpenAI) -> Iterator[Container]:
    with Container(make_settings(home, **llm_env(fake), MEMBOT_LLM_RETRIES=0), embedder=embedder) as container:
        yield container


def upload(chat: ChatCore, channel: Channel, name: str, text: str, user: str = "U1") -> str:
    [(source, report)] = chat.load(channel, [InputFile.from_bytes(name, text.encode())], user)
    assert report.passages, report.outcomes
    return source


@pytest.fixture
def loaded(c: Container) -> Container:
    upload(c.chat, SECRET, "secret-plan.txt", PLAN)
    upload(c.chat, DM, "diary.txt", DIARY)
    upload(c.chat, PUBLIC, "handbook.txt", HANDBOOK, user="U3")
    return c


def test_uploads_record_their_audience(loaded: Container) -> None:
    rows = {s.source.name: (s.source.audience, s.source.origin_channel, s.source.uploader)
            for s in loaded.catalog.summaries(SCOPE)}
    assert rows == {"secret-plan": ("channel", "GSECRET", "U1"), "diary": ("channel", "dm:U1", "U1"),
                    "handbook": ("workspace", "CGEN", "U3")}


def test_private_and_dm_uploads_are_invisible_from_a_public_channel(loaded: Container) -> None:
    chat = loaded.chat
    assert chat.source_names(PUBLIC) == ["handbook"]
    assert chat.source_names(OTHER_PUBLIC, "h") == ["handbook"]
    assert chat.source_names(OTHER_PUBLIC, "s") == []  # autocomplete on what was typed
    assert chat.source_names(SECRET) == ["handbook", "secret-plan"]
    assert chat.source_names(DM) == ["diary", "handbook"]
    assert chat.source_names(OTHER_DM) == ["handbook"]
    listing = chat.sources_text(PUBLIC)
    assert "handbook" in listing and "secret-plan" not in listing and "diary" not in listing
    assert "`secret-plan` (this channel only)" in chat.sources_text(SECRET)
    assert [s.name for s in channel_home(chat, PUBLIC).sources] == ["handbook"]
    assert [s.name for s in channel_home(chat, DM).sources] == ["diary", "handbook"]


def test_attach_by_name_does_not_reveal_a_private_source(loaded: Container) -> None:
    chat = loaded.chat
    for name in ("secret-plan", "diary", "Secret-Plan"):
        with pytest.raises(NotFound) as exc:
            chat.attach(PUBLIC, name)
        assert str(exc.value) == f"No source named {name!r}. Sources: handbook."
    assert chat.attach(OTHER_PUBLIC, "handbook").startswith("Attached `handbook`")
    assert "already attached" in chat.attach(SECRET, "secret-plan")  # its own upload was attached on load


def test_the_cli_sees_every_source(loaded: Container) -> None:
    assert [s.source.name for s in loaded.sources.summaries(SCOPE)] == ["diary", "handbook", "secret-plan"]
    hits = loaded.sources.search(SCOPE, ["secret-plan"], "acquisition target").hits
    assert hits and "ACMECORP" in hits[0].text


def quote_tool_result(request: dict[str, Any]) -> Any:
    result = json.loads(next(m["content"] for m in reversed(request["messages"]) if m["role"] == "tool"))
    return tool_call("send_message", message=result["message"])


def ask(c: Container, fake: FakeOpenAI, channel: Channel, question: str) -> str:
    fake.script(tool_call("archival_memory_search", query=question, request_heartbeat=True), quote_tool_result)
    result = c.chat.submit(channel, Speaker("U2", "Bob"), question).result(timeout=120)
    assert result.replies, result.notice
    return result.replies[-1]


def test_the_agent_does_not_search_an_attached_source_its_channel_cannot_see(loaded: Container,
                                                                            fake: FakeOpenAI) -> None:
    c = loaded
    source = c.catalog.find(SCOPE, "secret-plan")
    assert source is not None
    agent = c.chat.agent(PUBLIC)
    with Session(c.engine) as s:  # a binding from before, or one written behind the core's back
        s.add(SourceBinding(agent_id=int(agent.id or 0), source_id=int(source.id or 0)))
        s.commit()
    assert "ACMECORP" in ask(c, fake, SECRET, "What is the acquisition target?")  # where it was uploaded
    answer = ask(c, fake, PUBLIC, "What is the acquisition target?")
    assert "ACMECORP" not in answer and "secret-plan" not in answer
    assert "secret-plan" not in c.chat.memory_text(PUBLIC)
    assert "August" in ask(c, fake, PUBLIC, "When are the holidays?")  # its own public upload is searched


def test_public_uploads_can_be_kept_in_their_channel(c: Container) -> None:
    chat = ChatCore(c.agents, c.loader, c.catalog, public_uploads="channel")
    upload(chat, PUBLIC, "handbook.txt", HANDBOOK)
    assert chat.source_names(PUBLIC) == ["handbook"]
    assert chat.source_names(OTHER_PUBLIC) == []


def test_an_upload_never_lands_in_another_audiences_source(c: Container) -> None:
    """A private upload whose file name a workspace source already has gets its own source, and the other way
    round: nothing private is added to what others see, nothing of theirs is replaced."""
    assert upload(c.chat, PUBLIC, "notes.txt", HANDBOOK) == "notes"
    assert upload(c.chat, SECRET, "notes.txt", PLAN) == "notes-2"
    assert c.chat.source_names(PUBLIC) == ["notes"]
    assert c.chat.source_names(SECRET) == ["notes", "notes-2"]
    [notes] = [s for s in c.catalog.summaries(SCOPE) if s.source.name == "notes"]
    assert notes.files == 1 and notes.source.origin_channel == "CGEN"
