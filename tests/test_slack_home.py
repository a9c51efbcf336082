"""The App Home: published on app_home_opened with each shared channel's memory blocks, sources, schedules and
recent activity; the edit button opens a modal whose save goes through the block's limit. The real Bolt app and
slack_sdk against the fake Slack (fixtures of test_slack.py)."""

from __future__ import annotations

import json

from tests.test_slack import World, model, open_world, world

__all__ = ["model", "open_world", "world"]  # fixtures used here


def texts(view: dict[str, object]) -> str:
    return json.dumps(view["blocks"])


def test_home_shows_shared_channels_and_the_edit_saves(world: World) -> None:
    slack = world.slack
    slack.join("C1", "U1", "UBOT")
    slack.join("CSECRET", "U2", "UBOT")  # the bot is in it, U1 is not: never shown to U1
    slack.join("COTHER", "U1")  # U1 is in it, the bot is not
    slack.upload("U1", "C1", "handbook.txt", b"Holidays are in August.", "text/plain")
    slack.wait_posts(1, "C1", timeout=120)
    slack.command("/schedule", "add every monday 10:00 post the release notes", channel="C1")
    slack.wait_responses(1)
    ts = slack.say("U1", "C1", "<@UBOT> remember the launch")
    slack.wait_posts(2, "C1")
    world.running.bot.wait_idle(30)

    slack.open_home("U1")
    home = slack.wait_home("U1")
    shown = texts(home)
    assert home["type"] == "home" and "<#C1>" in shown and "CSECRET" not in shown and "COTHER" not in shown
    assert "`handbook` (1 passages, 1 files)" in shown and "post the release notes" in shown
    assert "Alice: remember the launch" in shown and "membot: re: remember the launch" in shown
    persona = json.dumps({"c": "C1", "l": "persona"})
    buttons = [b["accessory"]["value"] for b in home["blocks"] if "accessory" in b]
    assert persona in buttons and json.dumps({"c": "C1", "l": "person:U1"}) in buttons and ts

    slack.click(home, "membot_edit_block", persona)
    modal = slack.wait_for(lambda: [v for v in slack.views.values() if v.get("type") == "modal"], 30, "the modal")[0]
    [field] = [b for b in modal["blocks"] if b["type"] == "input"]
    limit = field["element"]["max_length"]
    assert field["element"]["initial_value"] == block_value(world, "persona")

    too_long = slack.submit(modal, {field["block_id"]: "x" * (limit + 1)})
    assert too_long["response_action"] == "errors" and str(limit) in too_long["errors"][field["block_id"]]
    assert block_value(world, "persona") == field["element"]["initial_value"]  # nothing changed

    assert slack.submit(modal, {field["block_id"]: "I am the launch team's helper."}) in ({}, {"payload": ""})
    after = slack.wait_home("U1", after=1)
    assert "I am the launch team's helper." in texts(after)
    assert block_value(world, "persona") == "I am the launch team's helper."


def test_home_without_a_shared_channel_says_how_to_invite(world: World) -> None:
    world.slack.open_home("U3")
    assert "/invite @membot" in texts(world.slack.wait_home("U3"))


def block_value(world: World, label: str) -> str:
    agent = world.container.agents.get("slack:T1", "channel:C1")
    return next(b.value for b in world.container.agents.memory(int(agent.id or 0)).blocks if b.label == label)


