"""Help on Discord: /help, `help` as a command's argument, a bare mention greeted; the guild and --sync start-up
errors as one line. The real discord.py against the fake Discord (fixtures of test_discord.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.errors import ConfigError
from bot.run_discord import not_in_server, run_discord, sync_ignored
from tests.test_discord import BOT_OPTIONS, World, user_texts, world

__all__ = ["world"]  # the fixture used here


async def test_help_lists_the_commands_only_to_the_asker(world: World) -> None:
    await world.start()
    _, [shown] = await world.command(world.team, world.general, world.alice, "help")
    assert shown.get("flags") == 64  # ephemeral
    for name in ("/attach", "/detach", "/sources", "/memory", "/schedule"):
        assert f"`{name}" in shown["content"]
    assert "/load" not in shown["content"] and "**Commands**" in shown["content"]
    assert not world.model.chat_requests


async def test_help_argument_shows_usage(world: World) -> None:
    await world.start()
    _, [attach] = await world.command(world.team, world.general, world.alice, "attach", source="help")
    assert attach["content"].startswith("Usage: `/attach [NAME]`") and attach.get("flags") == 64
    _, [detach] = await world.command(world.team, world.general, world.alice, "detach", source="help")
    assert detach["content"].startswith("Usage: `/detach NAME`")
    _, [schedule] = await world.command(world.team, world.general, world.alice, "schedule", command="help")
    assert "/schedule add" in schedule["content"]


async def test_bare_mention_gets_a_greeting(world: World) -> None:
    fake = world.fake
    await world.start()
    message = await fake.post(world.general, world.alice, fake.bot_mention)
    [greeting] = await world.replies(int(message["id"]), 1)
    assert "`/help`" in greeting and not world.model.chat_requests


async def test_a_server_the_bot_is_not_in_is_one_line(world: World) -> None:
    container = world.open_container(DISCORD_GUILD_ID="123456789")
    with pytest.raises(ConfigError) as raised:
        await asyncio.wait_for(run_discord(container, **BOT_OPTIONS), 60)
    assert str(raised.value) == not_in_server(123456789) and "\n" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


async def test_sync_with_a_guild_id_says_it_is_ignored(world: World, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "membot.discord"):
        await world.start(True, DISCORD_GUILD_ID=str(world.team.id))
    assert [r.getMessage() for r in caplog.records if r.name == "membot.discord"] == [sync_ignored(world.team.id)]
    assert set(world.fake.commands) == {str(world.team.id)}


async def test_a_reply_to_the_bot_without_a_ping_is_answered(world: World) -> None:
    fake = world.fake
    await world.start()
    first = await fake.post(world.general, world.alice, f"{fake.bot_mention} first question")
    thread = int(first["id"])
    await world.replies(thread, 1)
    await world.settle()
    # A reply (ping off) to a bot message in the channel:
    answer = fake.message_json(world.general, fake.bot_user, "a bot message in the channel", world.team.id)
    fake.messages[world.general].append(answer)
    await fake.post(world.general, world.bob, "and what about this?", reply_to=answer)
    [echo] = await world.replies(int(fake.messages[world.general][-1]["id"]), 1)
    assert echo == "echo: and what about this?"
    # A reply to someone else's message, without a mention, is not for the bot.
    await fake.post(world.general, world.alice, "just agreeing", reply_to=first)
    await world.settle()
    assert user_texts(world.model) == ["first question", "and what about this?"]


async def test_a_streamed_reply_grows_into_the_reply(world: World) -> None:
    from tests.fakes import tool_call

    text = "A streamed answer, long enough to arrive in several pieces, and then the whole of it at the end."
    world.model.script(tool_call("send_message", message=text))
    bot = await world.start(MEMBOT_LLM_STREAM="on")
    assert bot.conversations.stream_interval > 0
    bot.conversations.stream_interval = 1e-6  # every draft shown (the real pace is one edit a second or so)
    message = await world.fake.post(world.general, world.alice, f"{world.fake.bot_mention} tell me")
    thread = int(message["id"])
    assert await world.replies(thread, 1) and await world.settle() is None
    [posted] = [m for m in world.fake.messages[thread] if int(m["author"]["id"]) == world.fake.app_id]
    assert posted["content"] == text and len(posted["versions"]) >= 3
    assert all(v.endswith(" …") and text.startswith(v.removesuffix(" …")) for v in posted["versions"][:-1])


async def test_message_context_menus_ask_and_save(world: World) -> None:
    fake = world.fake
    await world.start()
    note = await fake.post(world.general, world.alice, "The launch moves to May 3, says legal.")
    await world.settle()
    assert not world.model.chat_requests  # not for the bot, until someone asks

    asked = await fake.context_menu(world.team, world.bob, "Ask membot about this", note)
    [answer] = await fake.wait_for(lambda: fake.followups.get(asked["token"]))
    assert answer["content"].startswith("echo: What can you tell me about this message from Alice?")
    assert "> The launch moves to May 3, says legal." in answer["content"] and not answer.get("flags")

    saved = await fake.context_menu(world.team, world.bob, "Save to memory", note)
    [done] = await fake.wait_for(lambda: fake.followups.get(saved["token"]))
    assert done["content"] == "Saved to archival memory (1 passage)." and done.get("flags") == 64
    agent = world.agents.get(f"discord:{world.team.id}", f"channel:{world.general}")
    found = world.agents.search_archival(int(agent.id or 0), "when is the launch")
    assert any("May 3" in hit.text and "Alice" in hit.text for hit in found.hits)


async def test_memory_panel_edits_a_block_within_its_limit(world: World) -> None:
    fake = world.fake
    await world.start()
    _, [panel] = await world.command(world.team, world.general, world.alice, "memory")
    assert panel.get("flags") == 64
    [embed] = panel["embeds"]
    names = [f["name"] for f in embed["fields"]]
    assert names[0].startswith("persona (") and {"Sources", "Schedules", "Recent activity"} <= set(names)
    button = next(c for row in panel["components"] for c in row["components"] if c["label"] == "Edit persona")

    async def edit(text: str) -> str:
        clicked = await fake.click(world.team, world.general, world.alice, panel, button["custom_id"])
        [opened] = await fake.wait_for(lambda: fake.callbacks.get(int(clicked["id"])))
        assert opened["type"] == 9  # MODAL
        field = opened["data"]["components"][0]["components"][0]
        limit = field["max_length"]
        submitted = await fake.submit_modal(world.team, world.general, world.alice, opened["data"],
                                            {field["custom_id"]: text.replace("LIMIT+1", "x" * (limit + 1))})
        [saved] = await fake.wait_for(lambda: fake.followups.get(submitted["token"]))
        assert fake.callbacks[int(submitted["id"])][0]["type"] == 5  # deferred before the edit ran
        return str(saved["content"])

    assert await edit("I keep the team's launch notes.") == "Saved the persona block (31/2000 characters)."
    assert "at most 2000 characters" in await edit("LIMIT+1")
    agent = world.agents.get(f"discord:{world.team.id}", f"channel:{world.general}")
    persona = next(b for b in world.agents.memory(int(agent.id or 0)).blocks if b.label == "persona")
    assert persona.value == "I keep the team's launch notes."
