"""The Slack adapter end to end: the real Bolt app, started by `start_slack` as `membot serve slack` starts it,
in Socket Mode and in HTTP mode, against a fake Slack (tests/fakes/slack_server.py) with the fake OpenAI model
and the real embedder, on SQLite and Milvus Lite."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfWriter
from sqlmodel import Session, col, select

from agent.db.models import Message
from bot.container import Container
from bot.run_slack import RunningSlack, SlackConfig, slack_config, start_slack
from tests.conftest import PAPER, make_settings, run_cli
from tests.fakes import FakeOpenAI, error, last_user_text, reply, tool_call
from tests.fakes.slack_server import FakeSlack, post

assert not [v for v in os.environ if v.startswith("SLACK_")]  # conftest clears them; Bolt reads some implicitly

MODES = ["socket", "http"]
PDF = "application/pdf"


@dataclass
class World:
    slack: FakeSlack
    model: FakeOpenAI
    container: Container
    running: RunningSlack
    mode: str

    def restart(self) -> None:
        """Stop the adapter and start a new one on the same storage (as after a process restart)."""
        self.running.close()
        self.running = connect(self.container, self.slack, self.mode)

    def user_messages(self, scope: str, agent_name: str) -> list[str]:
        agent = self.container.agents.get(scope, agent_name)
        with Session(self.container.engine) as s:
            rows = s.exec(select(Message).where(Message.agent_id == agent.id, Message.role == "user",
                                                Message.kind == "message").order_by(col(Message.id))).all()
            return [m.content for m in rows]


def slack_env(slack: FakeSlack, mode: str) -> dict[str, Any]:
    return {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret, "MEMBOT_SLACK_MODE": mode, "MEMBOT_SLACK_HOST": "127.0.0.1",
            "MEMBOT_SLACK_PORT": 0, "MEMBOT_SLACK_API_URL": slack.api_url,
            "MEMBOT_SLACK_FILE_HOSTS": slack.root}  # the fake serves uploads over http on 127.0.0.1


def model_env(model: FakeOpenAI) -> dict[str, Any]:
    return {"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "test", "MEMBOT_LLM_MODEL": "fake-model",
            "MEMBOT_LLM_RETRIES": 0}


def connect(container: Container, slack: FakeSlack, mode: str, config: SlackConfig | None = None) -> RunningSlack:
    running = start_slack(container, config)
    if mode == "socket":
        slack.use_socket_mode()
    else:
        slack.use_http(running.url)
    return running


def short_echo(request: dict[str, Any]) -> Any:
    """Unscripted model turns: answer a person with "re: <their message>"; anything else (a memory-pressure
    alert, a heartbeat) ends the turn quietly."""
    last = request["messages"][-1]
    if request.get("tools") and last["role"] == "user" and '"type": "user_message"' in last["content"]:
        return tool_call("send_message", message="re: " + json.loads(last["content"])["message"])
    return reply("noted")  # a heartbeat, an alert, or a summary request (no tools)


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(default=short_echo) as fake:
        yield fake


@pytest.fixture
def open_world(home: Path, embedder: Any, model: FakeOpenAI) -> Iterator[Any]:
    """A function (mode, **env) -> World; everything it opened is closed after the test."""
    opened: list[Any] = []

    def make(mode: str, **env: Any) -> World:
        slack = FakeSlack()
        opened.append(slack)
        container = Container(make_settings(home, **slack_env(slack, mode), **model_env(model), **env),
                              embedder=embedder)
        opened.append(container)
        world = World(slack, model, container, connect(container, slack, mode), mode)
        opened.append(world)
        return world

    yield make
    for thing in reversed(opened):
        (thing.running if isinstance(thing, World) else thing).close()


@pytest.fixture(params=MODES)
def world(request: pytest.FixtureRequest, open_world: Any) -> World:
    return open_world(request.param)  # type: ignore[no-any-return]


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def only_response(slack: FakeSlack, before: int) -> dict[str, Any]:
    responses = slack.wait_responses(before + 1)
    assert len(responses) == before + 1
    return responses[-1]


# conversations -------------------------------------------------------------------------------------------
def test_mention_answered_in_its_thread(world: World) -> None:
    slack, model = world.slack, world.model
    model.script(tool_call("send_message", message="## Plan\n**Hi** Alice, see [the docs](https://example.com/d)."))
    ts = slack.say("U1", "C1", "<@UBOT> hello there")
    [answer] = slack.wait_posts(1)
    assert answer["thread_ts"] == ts and answer["channel"] == "C1"
    assert answer["text"] == "*Plan*\n*Hi* Alice, see <https://example.com/d|the docs>."
    assert answer["args"]["unfurl_links"] is False
    # Slack sent app_mention and message for it: one turn, one answer.
    assert len(model.chat_requests) == 1 and len(slack.calls_of("chat.postMessage")) == 1
    prompt = json.loads(last_user_text(model.chat_requests[0]))
    assert prompt["message"] == "hello there" and prompt["from"] == "Alice"
    # The hourglass showed while it worked and is gone after.
    slack.wait_for(lambda: slack.calls_of("reactions.remove"), 10, "reactions.remove")
    [added], [removed] = slack.calls_of("reactions.add"), slack.calls_of("reactions.remove")
    assert added.args["timestamp"] == removed.args["timestamp"] == ts and added.at <= answer["at"] <= removed.at
    assert world.container.agents.find("slack:T1", "channel:C1") is not None


def test_long_reply_split_at_the_limit_keeping_code_blocks(open_world: Any) -> None:
    world = open_world("socket")
    code = "```python\n" + "\n".join(f"print({i})  # line {i}" for i in range(400)) + "\n```"
    world.model.script(tool_call("send_message", message="Here:\n\n" + "word " * 600 + "\n\n" + code))
    world.slack.say("U1", "C1", "<@UBOT> long please")
    world.running.bot.wait_idle(60)
    texts = [p["text"] for p in world.slack.posts("C1")]
    assert len(texts) >= 3 and all(len(t) <= 4000 for t in texts)
    assert all(t.count("```") % 2 == 0 for t in texts)  # every piece renders its code on its own
    body = "".join(texts)
    assert all(f"print({i})  # line {i}" in body for i in range(400))
    assert "```python" not in body  # Slack would show the language tag as code


def test_thread_follow_up_needs_no_mention(world: World) -> None:
    slack = world.slack
    root = slack.say("U1", "C1", "<@UBOT> let's plan the launch")
    slack.wait_posts(1)
    slack.say("U2", "C1", "and the date is May 3", thread_ts=root)
    [_, follow] = slack.wait_posts(2)
    assert follow["thread_ts"] == root and follow["text"] == "re: and the date is May 3"
    # Chatter not involving the bot: a top-level message, and a thread the bot is not in.
    other = slack.say("U1", "C1", "lunch anyone?")
    slack.say("U2", "C1", "yes!", thread_ts=other)
    last = slack.say("U1", "C1", "<@UBOT> last one")
    posts = slack.wait_posts(3)
    world.running.bot.wait_idle(30)
    assert [p["thread_ts"] for p in slack.posts()] == [root, root, last]
    assert world.user_messages("slack:T1", "channel:C1") == ["let's plan the launch", "and the date is May 3",
                                                              "last one"]
    assert posts[-1]["thread_ts"] == last


def test_thread_follow_up_after_a_restart(open_world: Any) -> None:
    world = open_world("socket")
    root = world.slack.say("U1", "C1", "<@UBOT> remember the thread")
    world.slack.wait_posts(1)
    world.restart()  # the thread is remembered in SQL; one it forgot is asked of Slack (test_slack_shared.py)
    world.slack.say("U1", "C1", "still there?", thread_ts=root)
    assert world.slack.wait_posts(2)[-1]["thread_ts"] == root
    assert world.slack.calls_of("conversations.replies") == []


def test_socket_mode_reconnects_when_slack_asks(open_world: Any) -> None:
    world = open_world("socket")
    world.slack.say("U1", "C1", "<@UBOT> before")
    world.slack.wait_posts(1)
    world.slack.refresh_connection()
    world.slack.say("U1", "C1", "<@UBOT> after")
    assert world.slack.wait_posts(2)[-1]["text"] == "re: after"
    assert len(world.slack.calls_of("apps.connections.open")) == 3  # the start-up token check, connect, reconnect


def test_direct_message_is_the_persons_own_agent(world: World) -> None:
    world.slack.say("U1", "D1", "hi, just us")
    [answer] = world.slack.wait_posts(1, "D1")
    assert answer["thread_ts"] == ""  # a DM answers in the conversation, not in a thread
    assert world.container.agents.find("slack:T1", "dm:U1") is not None
    assert world.container.agents.find("slack:T1", "channel:D1") is None


def test_two_people_get_separate_memory_blocks(world: World) -> None:
    slack = world.slack
    slack.say("U1", "C1", "<@UBOT> I am Alice and I like tea")
    slack.wait_posts(1)
    slack.say("U2", "C1", "<@UBOT> I am Bob and I like coffee")
    slack.wait_posts(2)
    slack.say("U1", "C1", "<@UBOT> me again")
    slack.wait_posts(3)
    slack.command("/memory", user="U2", channel="C1")
    memory = only_response(slack, 0)
    assert memory["response_type"] == "ephemeral"
    assert "person Alice" in memory["text"] and "person Bob" in memory["text"]
    assert sorted(c.args["user"] for c in slack.calls_of("users.info")) == ["U1", "U2"]  # names are cached
    blocks = world.container.agents.memory(int(world.container.agents.get("slack:T1", "channel:C1").id or 0)).blocks
    assert {b.label for b in blocks} >= {"person:U1", "person:U2"}


def test_twenty_messages_at_once_all_answered_in_order(open_world: Any) -> None:
    world = open_world("socket")
    slack = world.slack
    stamps = [slack.say("U1", "C1", f"<@UBOT> message {i:02d}", wait=False) for i in range(20)]
    posts = slack.wait_posts(20, "C1", timeout=120)
    world.running.bot.wait_idle(30)
    assert [p["thread_ts"] for p in slack.posts("C1")] == stamps
    assert [p["text"] for p in posts] == [f"re: message {i:02d}" for i in range(20)]
    assert world.user_messages("slack:T1", "channel:C1") == [f"message {i:02d}" for i in range(20)]


def test_twenty_requests_at_once_over_http_none_lost(open_world: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    world = open_world("http")
    with ThreadPoolExecutor(20) as pool:
        stamps = list(pool.map(lambda i: world.slack.say("U1", "C1", f"<@UBOT> message {i:02d}"), range(20)))
    posts = world.slack.wait_posts(20, "C1", timeout=120)
    world.running.bot.wait_idle(30)
    assert sorted(p["thread_ts"] for p in world.slack.posts("C1")) == sorted(stamps)
    assert sorted(world.user_messages("slack:T1", "channel:C1")) == [f"message {i:02d}" for i in range(20)]
    assert len(posts) == 20


# retries and failures ------------------------------------------------------------------------------------
def test_retries_are_deduplicated_by_event_id(world: World) -> None:
    slack = world.slack
    ts = slack.next_ts()
    event = slack.events_for({"type": "message", "user": "U1", "text": "<@UBOT> once", "ts": ts}, "C1")[0]
    first = slack.deliver_event(event)
    slack.deliver_event(event, event_id=first["event_id"], retry=1)
    slack.deliver_event(event, event_id=first["event_id"], retry=2)
    # A retry whose first delivery never arrived is still answered.
    lost = slack.events_for({"type": "message", "user": "U1", "text": "<@UBOT> lost", "ts": slack.next_ts()}, "C1")
    slack.deliver_event(lost[0], retry=1)
    slack.wait_posts(2)
    world.running.bot.wait_idle(30)
    assert [p["thread_ts"] for p in slack.posts()] == [ts, lost[0]["ts"]]
    assert world.user_messages("slack:T1", "channel:C1") == ["once", "lost"]


def test_rate_limited_post_is_retried(open_world: Any) -> None:
    world = open_world("socket")
    world.slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=0)
    ts = world.slack.say("U1", "C1", "<@UBOT> hi")
    [answer] = world.slack.wait_posts(1)
    assert answer["thread_ts"] == ts and len(world.slack.calls_of("chat.postMessage")) == 2


def test_failed_post_is_logged_with_an_id_and_the_reply_kept(open_world: Any,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    world = open_world("socket")
    world.slack.fail("chat.postMessage", "channel_not_found", times=5)
    world.model.script(tool_call("send_message", message="the answer is 42"))
    with caplog.at_level(logging.ERROR, logger="adapters.slack"):
        world.slack.say("U1", "C1", "<@UBOT> question")
        world.slack.wait_for(lambda: world.slack.calls_of("chat.postMessage"), 30, "a post")
        world.running.bot.wait_idle(30)
    [record] = [r for r in caplog.records if "chat.postMessage" in r.getMessage()]
    assert "error id" in record.getMessage() and "channel_not_found" in record.getMessage()
    agent = world.container.agents.get("slack:T1", "channel:C1")
    with Session(world.container.engine) as s:
        calls = [m.tool_calls for m in s.exec(select(Message).where(Message.agent_id == agent.id))]
    assert any("the answer is 42" in c for c in calls)


def test_model_failure_is_shown_not_lost(open_world: Any) -> None:
    world = open_world("socket")
    world.model.script(error(500, "boom"))
    world.slack.say("U1", "C1", "<@UBOT> hi")
    [answer] = world.slack.wait_posts(1)
    assert "HTTP 500" in answer["text"] and "please send it again" in answer["text"]


# files ---------------------------------------------------------------------------------------------------
def test_seed_walkthrough(world: World) -> None:
    slack, model = world.slack, world.model
    # 1. Upload the paper to #docs: it becomes a source of the workspace.
    ts = slack.upload("U1", "CDOCS", "memgpt_paper.pdf", PAPER.read_bytes())
    [loaded] = slack.wait_posts(1, "CDOCS", timeout=300)
    assert loaded["thread_ts"] == ts
    assert loaded["text"].startswith("Loaded ") and loaded["text"].endswith(" documents from memgpt_paper")
    assert "and 13 documents" in loaded["text"]
    # 2. In #general, /attach with no name offers a picker; picking attaches it.
    slack.command("/attach", channel="CGEN")
    menu = only_response(slack, 0)
    assert menu["response_type"] == "ephemeral"
    [section] = menu["blocks"]
    assert section["accessory"]["type"] == "external_select"
    assert [o["value"] for o in slack.suggest(section, "", channel="CGEN")] == ["memgpt_paper"]
    slack.pick(section, "memgpt_paper", channel="CGEN")
    responses = slack.wait_responses(3)
    assert responses[1]["delete_original"] is True and not responses[1].get("text")  # the picker goes
    assert responses[2]["response_type"] == "in_channel"
    assert responses[2]["text"].startswith("Attached `memgpt_paper` (")

    # 3. Ask about MemGPT: the agent searches its archival memory and quotes what it found.
    def quote(request: dict[str, Any]) -> Any:
        result = json.loads(next(m["content"] for m in reversed(request["messages"]) if m["role"] == "tool"))["message"]
        return tool_call("send_message", message=f"From the paper:\n> {result.splitlines()[1]}")

    model.script(tool_call("archival_memory_search", query="What is MemGPT?", request_heartbeat=True), quote)
    asked = slack.say("U2", "CGEN", "<@UBOT> What is MemGPT?")
    [answer] = slack.wait_posts(1, "CGEN")
    assert answer["thread_ts"] == asked
    assert answer["text"].startswith("From the paper:\n> [1] (memgpt_paper, memgpt_paper.pdf page ")
    assert "MemGPT" in answer["text"]


def test_duplicate_upload_adds_nothing(world: World) -> None:
    slack, c = world.slack, world.container
    text = b"The launch code is ZX-81-ALPHA. The launch is on May 3.\n"
    slack.upload("U1", "C1", "notes.txt", text, "text/plain")
    [first] = slack.wait_posts(1, "C1", timeout=120)
    assert first["text"] == "Loaded 1 passages and 1 documents from notes"
    ts = slack.upload("U2", "C1", "notes.txt", text, "text/plain")
    [_, second] = slack.wait_posts(2, "C1")
    assert second["thread_ts"] == ts and second["text"] == "`notes.txt` is already loaded as `notes`; nothing added."
    world.running.bot.wait_idle(30)
    assert len(slack.posts("C1")) == 2  # the file_shared events for the same uploads were not answered again
    [summary] = c.catalog.summaries("slack:T1")
    assert (summary.files, summary.passages) == (1, 1)
    assert [s.name for s in c.agents.attached(int(c.agents.get("slack:T1", "channel:C1").id or 0))] == ["notes"]


def test_file_known_only_by_id_is_looked_up(open_world: Any) -> None:
    world = open_world("socket")
    world.slack.upload("U1", "C1", "notes.md", b"# Notes\nThe vault code is 7741.\n", "text/markdown", id_only=True)
    [done] = world.slack.wait_posts(1, "C1", timeout=120)
    assert done["text"] == "Loaded 1 passages and 1 documents from notes"
    assert world.slack.calls_of("files.info")


def test_each_bad_file_gets_a_clear_reason(open_world: Any) -> None:
    world = open_world("socket", MEMBOT_MAX_FILE_MB=1)
    slack = world.slack
    cases: list[tuple[str, bytes, str, dict[str, Any], str]] = [
        ("tool.exe", b"MZ\x90\x00binary", "application/octet-stream", {},
         "Could not load `tool.exe`: file type '.exe' is not supported"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", PDF, {}, "Could not load `broken.pdf`: corrupt"),
        ("huge.pdf", b"%PDF-1.4\n" + b"0" * 100, PDF, {"size": 2_500_000},
         "Could not load `huge.pdf`: too large: 2.5 MB (the limit is 1 MB"),
        ("locked.pdf", encrypted_pdf(), PDF, {}, "Could not load `locked.pdf`: encrypted PDF: it needs a password"),
        ("private.txt", b"some text", "text/plain", {"sign_in_page": True},
         "Could not load `private.txt`: Slack sent a sign-in page instead of the file"),
    ]
    for n, (name, data, kind, extra, expected) in enumerate(cases, start=1):
        ts = slack.upload("U1", "C1", name, data, kind, **extra)
        answer = slack.wait_posts(n, "C1", timeout=60)[-1]
        assert answer["thread_ts"] == ts and answer["text"].startswith(expected), answer["text"]
    assert "files:read" in slack.posts("C1")[-1]["text"]
    fetched = {slack.files[f].meta["name"] for f, _ in slack.downloads}
    assert fetched == {"broken.pdf", "locked.pdf", "private.txt"}  # never the unsupported or too large ones
    assert world.container.catalog.summaries("slack:T1") == []


def test_workspaces_are_isolated(home: Path, embedder: Any, model: FakeOpenAI) -> None:
    with FakeSlack("T1") as one, FakeSlack("T2") as two:
        settings = make_settings(home, **slack_env(one, "socket"), **model_env(model))
        with Container(settings, embedder=embedder) as c:
            first = connect(c, one, "socket")
            second = connect(c, two, "socket", slack_config(make_settings(home, **slack_env(two, "socket"))))
            try:
                one.upload("U1", "C1", "plans.txt", b"Project Falcon ships in May.", "text/plain")
                assert one.wait_posts(1, "C1", timeout=120)[0]["text"].startswith("Loaded 1 passages")
                two.command("/sources", channel="C1")
                assert only_response(two, 0)["text"].startswith("No sources yet")
                two.command("/attach", "plans", channel="C1")
                assert only_response(two, 1)["text"].startswith("No sources in this workspace yet")
                one.command("/sources", channel="C1")
                assert "✓ `plans`" in only_response(one, 0)["text"]
                two.say("U1", "C1", "<@UBOT> hello")
                two.wait_posts(1)
                agents = c.agents.find("slack:T1", "channel:C1"), c.agents.find("slack:T2", "channel:C1")
                assert agents[0] and agents[1] and agents[0].id != agents[1].id
            finally:
                first.close()
                second.close()


# slash commands ------------------------------------------------------------------------------------------
def test_slash_commands(world: World) -> None:
    slack = world.slack
    slack.command("/load")
    assert "upload a file to a channel I am in" in only_response(slack, 0)["text"]
    slack.command("/sources", "everything")
    assert only_response(slack, 1)["text"].startswith("Usage: `/sources`")
    slack.command("/detach")
    assert only_response(slack, 2)["text"].startswith("Usage: `/detach NAME`")
    slack.upload("U1", "CDOCS", "release_notes.txt", b"Version 2 adds dark mode.", "text/plain")
    slack.wait_posts(1, "CDOCS", timeout=120)
    slack.command("/attach", "release", channel="C1")
    unknown = only_response(slack, 3)
    assert unknown["response_type"] == "ephemeral"
    assert unknown["text"] == "No source named 'release'. Did you mean: release_notes?"
    slack.command("/attach", "release_notes", channel="C1")
    attached = only_response(slack, 4)
    assert attached["response_type"] == "in_channel" and attached["text"].startswith("Attached `release_notes`")
    slack.command("/sources", channel="C1")
    listing = only_response(slack, 5)["text"]
    assert "✓ `release_notes`" in listing
    assert listing.startswith("*Sources this channel can use*")  # the core's bold heading stays bold, not _italic_
    slack.command("/detach", "release_notes", channel="C1")
    detached = only_response(slack, 6)
    assert detached == {**detached, "response_type": "in_channel",
                        "text": "Detached `release_notes` from this channel's agent."}
    slack.command("/memory", channel="C1")
    memory = only_response(slack, 7)
    assert memory["response_type"] == "ephemeral" and "*Memory of this channel's agent*" in memory["text"]
    assert "_Memory" not in memory["text"]


def test_schedule_command_adds_lists_and_cancels(world: World) -> None:
    slack = world.slack
    slack.command("/schedule", "add every monday 10:00 post the release notes", channel="C1")
    added = only_response(slack, 0)
    assert added["response_type"] == "in_channel" and added["text"].startswith("Scheduled #")
    schedule_id = re.search(r"#(\d+)", added["text"]).group(1)  # type: ignore[union-attr]
    slack.command("/schedule", "list", channel="C1")
    listing = only_response(slack, 1)
    assert listing["response_type"] == "ephemeral" and "post the release notes" in listing["text"]
    slack.command("/schedule", "list", channel="C2")  # another channel's agent has its own schedules
    assert "post the release notes" not in only_response(slack, 2)["text"]
    slack.command("/schedule", "add 2001-01-01 10:00 too late", channel="C1")
    past = only_response(slack, 3)
    assert past["response_type"] == "ephemeral" and "past" in past["text"]
    slack.command("/schedule", "add sometime soonish maybe", channel="C1")
    assert only_response(slack, 4)["response_type"] == "ephemeral"
    slack.command("/schedule", "cancel 99999", channel="C1")
    assert "99999" in only_response(slack, 5)["text"]
    slack.command("/schedule", f"cancel {schedule_id}", channel="C1")
    cancelled = only_response(slack, 6)
    assert cancelled["response_type"] == "in_channel" and cancelled["text"].startswith(f"Cancelled #{schedule_id}")


# HTTP mode and settings ----------------------------------------------------------------------------------
def test_http_mode_checks_signatures_and_has_a_health_check(open_world: Any) -> None:
    import urllib.request

    world = open_world("http")
    slack, url = world.slack, world.running.url
    body = json.dumps(slack.event_body(slack.events_for(
        {"type": "message", "user": "U1", "text": "<@UBOT> forged", "ts": slack.next_ts()}, "C1")[0])).encode()
    status, _ = post(url, body, slack.signed_headers(body, secret="not-the-secret"))
    assert status == 401
    challenge = json.dumps({"token": "t", "challenge": "abc123", "type": "url_verification"}).encode()
    assert post(url, challenge, slack.signed_headers(challenge)) == (200, '{"challenge": "abc123"}')
    health = url.rsplit("/", 2)[0] + "/health"
    with urllib.request.urlopen(health, timeout=10) as response:
        assert response.status == 200 and json.loads(response.read()) == {"ok": True}
    slack.say("U1", "C1", "<@UBOT> real")
    slack.wait_posts(1)
    world.running.bot.wait_idle(30)
    assert world.user_messages("slack:T1", "channel:C1") == ["real"]


def test_slack_settings_are_checked(home: Path) -> None:
    from agent.errors import ConfigError

    def problem(**env: Any) -> str:
        with pytest.raises(ConfigError) as caught:
            slack_config(make_settings(home, **env))
        return str(caught.value)

    assert "SLACK_BOT_TOKEN is not set" in problem() and "xoxb-" in problem()
    assert "starting xoxb- (this one starts xoxp-)" in problem(SLACK_BOT_TOKEN="xoxp-123-secret")
    assert "SLACK_APP_TOKEN is not set" in problem(SLACK_BOT_TOKEN="xoxb-1")
    assert "SLACK_APP_TOKEN must be" in problem(SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xoxb-2")
    assert "SLACK_SIGNING_SECRET is not set" in problem(SLACK_BOT_TOKEN="xoxb-1", MEMBOT_SLACK_MODE="http")
    assert "MEMBOT_SLACK_MODE must be socket or http" in problem(MEMBOT_SLACK_MODE="carrier-pigeon")
    assert "secret" not in problem(SLACK_BOT_TOKEN="xoxp-123-secret")  # never echo a token
    config = slack_config(make_settings(home, SLACK_BOT_TOKEN="xoxb-1-secret", SLACK_APP_TOKEN="xapp-1-secret"))
    assert config.mode == "socket" and "secret" not in repr(config)


def test_rejected_token_is_a_clear_error(home: Path, embedder: Any, model: FakeOpenAI) -> None:
    from agent.errors import ConfigError

    with FakeSlack() as slack:
        env = {**slack_env(slack, "socket"), "SLACK_BOT_TOKEN": "xoxb-revoked"}
        with Container(make_settings(home, **env, **model_env(model)), embedder=embedder) as c:
            with pytest.raises(ConfigError, match=r"Slack rejected SLACK_BOT_TOKEN \(invalid_auth\)"):
                start_slack(c)


def test_cli_names_the_missing_variable(home: Path) -> None:
    result = run_cli(home, "serve", "slack", env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: SLACK_BOT_TOKEN is not set: it is the bot token from the app's OAuth & Permissions page, "
        "starting xoxb-."]
    result = run_cli(home, "serve", "slack", "--mode", "http",
                     env={"SLACK_BOT_TOKEN": "xoxb-1", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert result.returncode == 1 and "SLACK_SIGNING_SECRET is not set" in result.stderr


def test_membot_serve_slack_runs_until_sigterm(home: Path, model: FakeOpenAI) -> None:
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    with FakeSlack() as slack:
        env = {**os.environ, **{k: str(v) for k, v in {**slack_env(slack, "socket"), **model_env(model)}.items()},
               "MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "slack"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            slack.use_socket_mode(timeout=120)
            ts = slack.say("U1", "C1", "<@UBOT> are you there?")
            assert slack.wait_posts(1)[0] == {**slack.wait_posts(1)[0], "thread_ts": ts, "text": "re: are you there?"}
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "workspace Fake T1 (T1) as @membot, socket mode" in err and "stopping" in err


def test_several_messages_from_one_turn(open_world: Any) -> None:
    world = open_world("socket")
    world.model.script(reply(tool_calls=[("send_message", {"message": "first"}),
                                         ("send_message", {"message": "second"})]))
    ts = world.slack.say("U1", "C1", "<@UBOT> two answers please")
    posts = world.slack.wait_posts(2)
    assert [(p["text"], p["thread_ts"]) for p in posts] == [("first", ts), ("second", ts)]


def test_timed_events_are_posted_through_the_adapter(open_world: Any) -> None:
    from agent.schedule.delivery import DeliveryError, Target

    world = open_world("socket")
    deliveries = world.container.deliveries
    assert deliveries.platforms() == {"slack"}
    deliveries.deliver(Target("slack:T1", channel="C1", thread="1700000000.000999"), "**Stand-up** in 5 minutes")
    deliveries.deliver(Target("slack:T1", user="U1"), "Your reminder")
    posts = world.slack.wait_posts(2)
    assert [(p["channel"], p["thread_ts"], p["text"]) for p in posts] == [
        ("C1", "1700000000.000999", "*Stand-up* in 5 minutes"), ("U1", "", "Your reminder")]
    with pytest.raises(DeliveryError, match="serves slack:T1, not slack:T9"):
        deliveries.deliver(Target("slack:T9", channel="C1"), "elsewhere")
    world.slack.fail("chat.postMessage", "channel_not_found")
    with pytest.raises(DeliveryError, match="Slack refused"):
        deliveries.deliver(Target("slack:T1", channel="CGONE"), "lost")
    world.running.close()
    world.running = connect(world.container, world.slack, "socket")  # closing unregisters; a new start registers
    world.running.close()
    assert deliveries.platforms() == set()
    world.running = connect(world.container, world.slack, "socket")


def test_edits_joins_and_other_bots_are_not_answered(open_world: Any) -> None:
    world = open_world("socket")
    slack = world.slack
    for extra in ({"subtype": "message_changed"}, {"subtype": "channel_join"}, {"bot_id": "BOTHER"}):
        event = slack.events_for({"type": "message", "user": "U1", "text": "<@UBOT> hi", "ts": slack.next_ts()},
                                 "C1")[-1]
        slack.deliver_event({**event, **extra})
    last = slack.say("U1", "C1", "<@UBOT> the real one")
    slack.wait_posts(1)
    world.running.bot.wait_idle(30)
    assert [p["thread_ts"] for p in slack.posts()] == [last]


def test_upload_with_a_question_loads_then_answers(open_world: Any) -> None:
    world = open_world("socket")
    world.model.script(tool_call("send_message", message="I have read it."))
    ts = world.slack.upload("U1", "C1", "faq.md", b"# FAQ\nThe office opens at 9.\n", "text/markdown",
                            text="<@UBOT> read this please")
    loaded, answered = world.slack.wait_posts(2, "C1", timeout=120)
    assert loaded["text"] == "Loaded 1 passages and 1 documents from faq" and answered["text"] == "I have read it."
    assert loaded["thread_ts"] == answered["thread_ts"] == ts
    assert "faq" in json.dumps(world.model.chat_requests[0]["messages"][0])  # attached before the turn


def test_manifest_matches_the_app() -> None:
    import yaml

    from adapters.slack.commands import COMMANDS

    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "manifest.yml").read_text())
    assert tuple(c["command"] for c in manifest["features"]["slash_commands"]) == COMMANDS
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "app_mention", "app_home_opened", "message.channels", "message.groups", "message.im", "message.mpim",
        "file_shared", "file_deleted"}
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read", "channels:history", "groups:history", "im:history", "mpim:history", "chat:write",
        "commands", "files:read", "reactions:write", "users:read",
        "channels:read", "groups:read", "mpim:read"}  # users.conversations, for the App Home
    assert manifest["features"]["app_home"]["home_tab_enabled"]
    assert manifest["settings"]["socket_mode_enabled"] and manifest["settings"]["interactivity"]["is_enabled"]


# formatting ----------------------------------------------------------------------------------------------
def test_markdown_becomes_mrkdwn() -> None:
    from adapters.slack.format import to_mrkdwn

    assert to_mrkdwn("**bold**, *italic*, ***both***, __strong__, ~~gone~~") == (
        "*bold*, _italic_, *_both_*, *strong*, ~gone~")
    assert to_mrkdwn("[docs](https://x.io/a_b__c?d=1&e=2) ![logo](https://x.io/l.png) [rel](./x)") == (
        "<https://x.io/a_b__c?d=1&amp;e=2|docs> <https://x.io/l.png|logo> rel (./x)")
    assert to_mrkdwn("# Title\n## **Sub** title\n- one\n* two\n  + three\n> said *this*\n---") == (
        "*Title*\n*Sub title*\n• one\n• two\n  • three\n> said _this_\n──────────")
    assert to_mrkdwn("a < b & <!channel> <@U1>") == "a &lt; b &amp; &lt;!channel&gt; &lt;@U1&gt;"  # no pings
    code = "```python\nx = a**2 * b  # **not bold** [x](y)\nif a < b: pass\n```"
    assert to_mrkdwn(code) == "```\nx = a**2 * b  # **not bold** [x](y)\nif a &lt; b: pass\n```"
    assert to_mrkdwn("use `**x**` and `a<b`") == "use `**x**` and `a&lt;b`"


def test_long_text_is_split_within_the_limit() -> None:
    from adapters.slack.format import MESSAGE_LIMIT, pieces

    text = "intro " * 700 + "\n```\n" + "\n".join(f"line {i}" for i in range(1500)) + "\n```\nthe end"
    parts = pieces(text)
    assert len(parts) > 2 and all(len(p) <= MESSAGE_LIMIT for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)
    assert parts[-1].endswith("the end")


def test_slack_markup_becomes_plain_text() -> None:
    from adapters.slack.format import from_slack

    names = {"U1": "Alice"}.get
    text = "<@UBOT> ask <@U1> about <https://x.io|the site>, <https://y.io>, <#C1|general>, <!here> &amp; a &lt; b"
    assert from_slack(text, lambda u: names(u) or u, "UBOT") == (
        "ask @Alice about the site (https://x.io), https://y.io, #general, @here & a < b")
