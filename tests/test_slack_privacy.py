"""Who sees a source on Slack: uploads in a private channel or a DM stay there (the /sources listing, the /attach
picker, /attach NAME and the agent's archival search in #general know nothing of them); privacy comes from the
event's channel_type or conversations.info. The real Bolt app and slack_sdk against the fake Slack (fixtures of
test_slack.py)."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk import WebClient

from adapters.slack.privacy import Privacy
from tests.fakes import tool_call
from tests.fakes.slack_server import FakeSlack
from tests.test_slack import World, model, only_response, open_world

__all__ = ["model", "open_world"]  # fixtures used here

PLAN = b"Confidential: the acquisition target is ACMECORP, to be announced in March."


def quote(request: dict[str, Any]) -> Any:
    result = json.loads(next(m["content"] for m in reversed(request["messages"]) if m["role"] == "tool"))
    return tool_call("send_message", message="Found: " + result["message"])


def ask(world: World, channel: str, question: str, posts: int) -> str:
    world.model.script(tool_call("archival_memory_search", query=question, request_heartbeat=True), quote)
    world.slack.say("U2", channel, f"<@UBOT> {question}")
    return str(world.slack.wait_posts(posts, channel)[-1]["text"])


def test_private_channel_and_dm_uploads_are_invisible_from_general(open_world: Any) -> None:
    world: World = open_world("socket")
    slack = world.slack
    slack.private.add("CSECRET")  # a private channel (its events say channel_type "group")
    slack.upload("U1", "CSECRET", "secret-plan.txt", PLAN, "text/plain")
    slack.upload("U1", "D1", "diary.txt", b"Dear diary, I am learning the cello.", "text/plain")
    slack.upload("U3", "CGEN", "handbook.txt", b"Holidays are in August.", "text/plain")
    for channel in ("CSECRET", "D1", "CGEN"):
        [loaded] = slack.wait_posts(1, channel, timeout=120)
        assert loaded["text"].startswith("Loaded 1 passages"), loaded
    world.running.bot.wait_idle(30)

    slack.command("/sources", channel="CGEN")
    listing = only_response(slack, 0)["text"]
    assert "handbook" in listing and "secret-plan" not in listing and "diary" not in listing
    slack.command("/attach", channel="CGEN")
    [section] = only_response(slack, 1)["blocks"]
    assert [o["value"] for o in slack.suggest(section, "", channel="CGEN")] == ["handbook"]
    assert slack.suggest(section, "secret", channel="CGEN") == []
    slack.command("/attach", "secret-plan", channel="CGEN")
    refused = only_response(slack, 2)
    assert refused == {**refused, "response_type": "ephemeral",
                       "text": "No source named 'secret-plan'. Sources: handbook."}

    answer = ask(world, "CGEN", "What is the acquisition target?", 2)
    assert answer.startswith("Found: ") and "ACMECORP" not in answer
    assert "ACMECORP" in ask(world, "CSECRET", "What is the acquisition target?", 2)  # where it was uploaded
    slack.command("/sources", channel="CSECRET")
    assert "`secret-plan` (this channel only)" in only_response(slack, 3)["text"]


def test_privacy_is_asked_of_conversations_info_once_and_fails_closed() -> None:
    with FakeSlack() as slack:
        client = WebClient(token=slack.bot_token, base_url=slack.api_url)
        slack.private.add("CSECRET")
        privacy = Privacy()
        assert privacy.is_private(client, "CSECRET") is True
        assert privacy.is_private(client, "CGEN") is False
        assert privacy.is_private(client, "CGEN") is False  # cached
        assert privacy.is_private(client, "D1") and privacy.is_private(client, "CX", "mpim")  # no call needed
        assert [c.args["channel"] for c in slack.calls_of("conversations.info")] == ["CSECRET", "CGEN"]
        slack.private.add("CGEN")  # converted to private: the channel_convert_to_private message says so
        privacy.forget("CGEN")
        assert privacy.is_private(client, "CGEN") is True
        slack.fail("conversations.info", "missing_scope")
        assert privacy.is_private(client, "CNEW") is True  # cannot tell: the upload stays in its channel


def test_share_and_delete_from_slack(open_world: Any) -> None:
    world: World = open_world("http")
    slack = world.slack
    slack.admins.add("U9")
    slack.upload("U1", "GSECRET", "secret-plan.txt", PLAN, "text/plain")
    [loaded] = slack.wait_posts(1, "GSECRET", timeout=120)
    assert loaded["text"].endswith("`/sources share secret-plan` shows it to the workspace.")
    world.running.bot.wait_idle(30)

    slack.command("/sources", "share secret-plan", user="U2", channel="GSECRET")
    refused = only_response(slack, 0)
    assert refused["response_type"] == "ephemeral" and refused["text"].startswith("Only the person who uploaded")
    slack.command("/sources", "share secret-plan", user="U1", channel="GSECRET")
    shared = only_response(slack, 1)
    assert shared["response_type"] == "in_channel" and shared["text"].startswith("Shared `secret-plan`")
    slack.command("/attach", channel="CGEN")
    [section] = only_response(slack, 2)["blocks"]
    assert [o["value"] for o in slack.suggest(section, "", channel="CGEN")] == ["secret-plan"]

    slack.command("/sources", "delete secret-plan confirm", user="U2", channel="CGEN")
    assert only_response(slack, 3)["text"].startswith("Only the person who uploaded it or an admin")
    slack.command("/sources", "delete secret-plan", user="U9", channel="CGEN")  # an admin; asked first
    asked = only_response(slack, 4)
    assert asked["response_type"] == "ephemeral" and asked["text"].endswith("`/sources delete secret-plan confirm`.")
    slack.command("/sources", "delete secret-plan confirm", user="U9", channel="CGEN")
    done = only_response(slack, 5)
    assert done == {**done, "response_type": "in_channel", "text": "Deleted `secret-plan` (1 file(s), 1 passages)."}
    assert world.container.catalog.summaries("slack:T1") == []


def test_a_file_deleted_in_slack_leaves_memory(open_world: Any) -> None:
    world: World = open_world("socket")
    slack, c = world.slack, world.container
    slack.upload("U1", "CGEN", "plans.txt", b"Project Falcon ships in May.", "text/plain")
    slack.wait_posts(1, "CGEN", timeout=120)
    slack.upload("U1", "CGEN", "plans.md", b"# Plans\nProject Heron ships in June.", "text/markdown")
    slack.wait_posts(2, "CGEN", timeout=120)
    world.running.bot.wait_idle(30)
    [falcon] = [f for f, stored in slack.files.items() if stored.meta["name"] == "plans.txt"]
    [heron] = [f for f, stored in slack.files.items() if stored.meta["name"] == "plans.md"]
    assert [(s.source.name, s.files) for s in c.catalog.summaries("slack:T1")] == [("plans", 2)]

    slack.delete_file(falcon)
    slack.wait_for(lambda: [s.files for s in c.catalog.summaries("slack:T1")] == [1], what="the document removed")
    hits = c.sources.search("slack:T1", ["plans"], "when does the project ship").hits
    assert hits and all("Falcon" not in h.text for h in hits) and "Heron" in hits[0].text
    slack.delete_file(heron)  # its last file: the source goes too
    slack.wait_for(lambda: c.catalog.summaries("slack:T1") == [], what="the source removed")
