"""Help on Slack: `/membot help`, `help` as any command's argument, a bare mention greeted; group DMs answered like
channels; a rejected app token as one line. The real Bolt app against the fake Slack (fixtures of test_slack.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.fakes import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.test_slack import World, model, model_env, only_response, open_world, slack_env, world

__all__ = ["model", "open_world", "world"]  # fixtures used here


def test_membot_help_lists_every_command_with_examples(world: World) -> None:
    slack = world.slack
    slack.command("/membot", "help")
    shown = only_response(slack, 0)
    assert shown["response_type"] == "ephemeral"
    text = shown["text"]
    for name in ("/attach", "/detach", "/sources", "/memory", "/schedule", "/load"):
        assert f"`{name}" in text
    assert "`/schedule add friday 10:00 post the release notes`" in text
    assert "*Commands*:" in text and "_Commands_" not in text  # bold on Slack, not italics
    slack.command("/membot")  # no argument: the same help
    assert only_response(slack, 1)["text"] == text
    assert not world.model.chat_requests  # help never costs a model call


def test_help_argument_shows_usage_not_a_lookup(world: World) -> None:
    slack = world.slack
    for n, name in enumerate(("/attach", "/detach", "/sources", "/memory", "/schedule", "/load")):
        slack.command(name, "help", channel="C1")
        text = only_response(slack, n)["text"]
        assert text.startswith(f"Usage: `{name}"), text
        assert "No source named" not in text


def test_bare_mention_gets_a_greeting(world: World) -> None:
    ts = world.slack.say("U1", "C1", "<@UBOT>")
    [answer] = world.slack.wait_posts(1)
    assert answer["thread_ts"] == ts and "`/membot help`" in answer["text"]
    assert not world.model.chat_requests


def test_group_dm_is_a_shared_channel_agent(open_world: Any) -> None:
    world = open_world("socket")
    world.slack.mpims.add("GMPIM1")
    ts = world.slack.say("U1", "GMPIM1", "<@UBOT> hello group")
    [answer] = world.slack.wait_posts(1, "GMPIM1")
    assert answer["thread_ts"] == ts and answer["text"] == "re: hello group"
    world.slack.say("U2", "GMPIM1", "and me", thread_ts=ts)
    assert world.slack.wait_posts(2, "GMPIM1")[-1]["text"] == "re: and me"
    assert world.user_messages("slack:T1", "channel:GMPIM1") == ["hello group", "and me"]


def test_rejected_app_token_is_one_line(home: Path, model: FakeOpenAI) -> None:
    with FakeSlack() as slack:
        env = {k: str(v) for k, v in {**slack_env(slack, "socket"), **model_env(model)}.items()}
        env["SLACK_APP_TOKEN"] = "xapp-1-revoked-secret"
        result = run_cli(home, "serve", "slack", env={**os.environ, **env}, timeout=300)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and not [line for line in lines if " ERROR " in line]
    assert lines[-1:] == [
        "Error: Slack rejected SLACK_APP_TOKEN (invalid_auth): create an app-level token with the "
        "connections:write scope on the app's Basic Information page, and make sure Socket Mode is enabled."]
    assert "revoked-secret" not in result.stderr + result.stdout


def test_attach_picker_types_ahead_over_every_source(open_world: Any) -> None:
    world = open_world("socket")
    slack = world.slack
    for name in ("release_notes", "roadmap", "notes_2024"):
        slack.upload("U1", "CDOCS", f"{name}.txt", f"The {name} say hello.".encode(), "text/plain")
    slack.wait_posts(3, "CDOCS", timeout=180)
    slack.command("/attach", channel="C1")
    [section] = only_response(slack, 0)["blocks"]
    assert section["accessory"]["type"] == "external_select" and "options" not in section["accessory"]
    assert [o["value"] for o in slack.suggest(section, "")] == ["notes_2024", "release_notes", "roadmap"]
    assert [o["value"] for o in slack.suggest(section, "NOTES")] == ["notes_2024", "release_notes"]
    assert slack.suggest(section, "nothing-like-it") == []
    slack.pick(section, "roadmap", channel="C1")
    assert slack.wait_responses(3)[2]["text"].startswith("Attached `roadmap`")
