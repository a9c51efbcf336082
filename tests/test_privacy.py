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

from adapters.listing import load_report_markdown, memory_markdown
from agent import Channel, ChatCore, InputFile, NotFound, SourceItem, Speaker, UserError, channel_home
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
    [handbook] = chat.source_list(PUBLIC)
    assert (handbook.name, handbook.attached, handbook.channel_only, handbook.passages) == ("handbook", True, False, 1)
    assert [(s.name, s.attached, s.channel_only) for s in chat.source_list(SECRET)] == [
        ("handbook", False, False), ("secret-plan", True, True)]
    assert chat.sources_command(OTHER_PUBLIC, "").listing == [
        SourceItem("handbook", 1, 1, 1, attached=False, channel_only=False)]
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
    assert "secret-plan" not in memory_markdown(*c.chat.memory(PUBLIC))
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


# names, versions, sharing and deleting ------------------------------------------------------------------------
def load_text(chat: ChatCore, channel: Channel, name: str, text: str, user: str = "U1") -> tuple[str, str, int]:
    [(source, report)] = chat.load(channel, [InputFile.from_bytes(name, text.encode())], user)
    return source, load_report_markdown(source, report), report.passages


def test_two_channels_uploading_notes_keep_both(c: Container, fake: FakeOpenAI) -> None:
    first, said, _ = load_text(c.chat, PUBLIC, "notes.txt", "The general channel meets on Mondays.")
    assert (first, said) == ("notes", "Loaded 1 passages and 1 documents from notes")
    second, said, _ = load_text(c.chat, OTHER_PUBLIC, "notes.txt", "The random channel plays chess on Fridays.")
    assert second == "notes-2"
    assert said == ("Loaded 1 passages and 1 documents from notes-2\n"
                    "Another source is named `notes`, so this one is `notes-2`.")
    again, said, _ = load_text(c.chat, OTHER_PUBLIC, "notes.txt", "The random channel plays chess on Fridays.")
    assert (again, said) == ("notes-2", "`notes.txt` is already loaded as `notes-2`; nothing added.")
    assert "Mondays" in ask(c, fake, PUBLIC, "When does the channel meet?")
    assert "Fridays" in ask(c, fake, OTHER_PUBLIC, "When is chess?")
    assert [s.files for s in c.catalog.summaries(SCOPE)] == [1, 1]


def test_uploads_at_once_from_two_channels_never_share_a_source(c: Container) -> None:
    from concurrent.futures import ThreadPoolExecutor

    channels = [Channel(SCOPE, f"C{n}") for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        names = list(pool.map(lambda ch: load_text(c.chat, ch, "notes.txt", f"Notes of {ch.id}: {ch.id} rules.")[0],
                              channels))
    assert sorted(names) == ["notes", "notes-2", "notes-3", "notes-4"]
    origins = {s.source.name: s.source.origin_channel for s in c.catalog.summaries(SCOPE)}
    assert {origins[n] for n in names} == {ch.id for ch in channels}
    assert all(s.files == 1 for s in c.catalog.summaries(SCOPE))


def test_a_new_version_in_the_same_channel_replaces_and_says_so(c: Container, fake: FakeOpenAI) -> None:
    _, _, before = load_text(c.chat, PUBLIC, "notes.txt", "Version one: the launch is in May.")
    longer = " ".join(f"Section {n}: the launch moved to June because of item {n}." for n in range(120))
    name, said, now = load_text(c.chat, PUBLIC, "notes.txt", longer)
    assert name == "notes" and now > before
    assert said == f"`notes.txt` in `notes` replaced: {before} passages before, {now} now."
    [notes] = c.catalog.summaries(SCOPE)
    assert (notes.files, notes.passages) == (1, now)
    assert "May" not in ask(c, fake, PUBLIC, "When is the launch?")


def test_a_private_upload_says_who_sees_it_and_its_uploader_can_share_it(c: Container) -> None:
    _, said, _ = load_text(c.chat, SECRET, "secret-plan.txt", PLAN, user="U1")
    assert said.endswith("Only this channel can see it; `/sources share secret-plan` shows it to the workspace.")
    with pytest.raises(UserError, match="Only the person who uploaded it or an admin"):
        c.chat.sources_command(SECRET, "share secret-plan", user="U2")
    with pytest.raises(NotFound):  # from elsewhere it does not exist, for sharing too
        c.chat.sources_command(PUBLIC, "share secret-plan", user="U1")
    shared = c.chat.sources_command(SECRET, "share secret-plan", user="U1")
    assert shared.changed and shared.text.startswith("Shared `secret-plan`: every channel and DM of this workspace")
    assert c.chat.source_names(PUBLIC) == ["secret-plan"]
    again = c.chat.sources_command(SECRET, "share secret-plan", user="U2")
    assert not again.changed and "already visible" in again.text
    with pytest.raises(UserError, match="^Usage: `/sources`"):
        c.chat.sources_command(SECRET, "share")


def test_delete_is_for_the_uploader_and_admins_and_asks_first(c: Container) -> None:
    load_text(c.chat, PUBLIC, "handbook.txt", HANDBOOK, user="U1")
    with pytest.raises(UserError, match="Only the person who uploaded it or an admin of this workspace can delete"):
        c.chat.sources_command(OTHER_PUBLIC, "delete handbook confirm", user="U2")
    asked = c.chat.sources_command(OTHER_PUBLIC, "delete handbook", user="U1")
    assert not asked.changed and asked.text == (
        "This deletes `handbook` (1 file(s), 1 passages) for every channel that uses it, and cannot be undone. "
        "To go ahead: `/sources delete handbook confirm`.")
    assert c.chat.source_names(PUBLIC) == ["handbook"]
    done = c.chat.sources_command(OTHER_PUBLIC, "delete handbook confirm", user="U1")
    assert done.changed and done.text == "Deleted `handbook` (1 file(s), 1 passages)."
    assert c.catalog.summaries(SCOPE) == [] and "handbook" not in memory_markdown(*c.chat.memory(PUBLIC))
    c.loader.load(SCOPE, "manual", [InputFile.from_bytes("manual.txt", b"Press the red button.")])  # the CLI
    with pytest.raises(UserError, match="whoever loaded it with the CLI"):
        c.chat.sources_command(PUBLIC, "delete manual confirm", user="U1")
    assert c.chat.sources_command(PUBLIC, "delete manual confirm", user="U9", admin=True).changed
