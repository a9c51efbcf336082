"""`membot serve PLATFORM`: run the bot on a chat platform until interrupted."""

from __future__ import annotations

import click

from agent.errors import ConfigError
from bot.serve_discord import discord_command


@click.group()
def serve() -> None:
    """Run membot on a chat platform (each channel gets its own agent)."""


@serve.command("slack")
@click.option("--mode", type=click.Choice(["socket", "http"]),
              help="Socket Mode (default; needs SLACK_APP_TOKEN) or the HTTP Events API (needs SLACK_SIGNING_SECRET).")
@click.option("--port", type=int, help="HTTP mode: the port to listen on (MEMBOT_SLACK_PORT, default 3000).")
@click.option("--path", help="HTTP mode: the Request URL path (MEMBOT_SLACK_PATH, default /slack/events).")
def slack(mode: str | None, port: int | None, path: str | None) -> None:
    """Serve Slack: SLACK_BOT_TOKEN (xoxb-) and SLACK_APP_TOKEN (xapp-) or SLACK_SIGNING_SECRET. See docs/slack.md."""
    from bot.cli import container
    from bot.run_slack import serve_slack, slack_config

    with container() as c:
        slack_config(c.settings, mode, port, path)  # a missing token fails before anything is opened
        serve_slack(c, mode, port, path)


serve.add_command(discord_command)


@serve.command("all")
@click.option("--sync", is_flag=True, help="Also register the Discord slash commands globally (see serve discord).")
def serve_all(sync: bool) -> None:
    """Serve Slack and Discord from one process (both configured; one scheduler for both)."""
    import asyncio

    from bot.cli import container
    from bot.run_discord import NO_TOKEN, run_discord
    from bot.run_slack import slack_config, start_slack

    with container() as c:
        config = slack_config(c.settings)  # a missing Slack token fails before anything is opened
        if not c.settings.discord_token:
            raise ConfigError(NO_TOKEN)
        _ = c.runner  # no chat model, or too small a window, fails before connecting
        running = start_slack(c, config)
        try:
            asyncio.run(run_discord(c, sync))  # starts the scheduler with both deliveries registered
        except KeyboardInterrupt:
            pass
        finally:
            running.close()
