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
    from bot.container import open_container
    from bot.run_slack import serve_slack
    from bot.slack_config import slack_config

    with open_container() as c:
        slack_config(c.settings, mode, port, path)  # a missing token fails before anything is opened
        serve_slack(c, mode, port, path)


serve.add_command(discord_command)


@serve.command("all")
@click.option("--sync", is_flag=True, help="Also register the Discord slash commands globally (see serve discord).")
def serve_all(sync: bool) -> None:
    """Serve Slack and Discord from one process (both configured; one scheduler for both)."""
    import asyncio

    from bot.container import open_container
    from bot.logsafe import scrub_logs
    from bot.process import setup_logging, sigterm_interrupts
    from bot.run_discord import NO_TOKEN, run_discord
    from bot.run_slack import start_slack
    from bot.slack_config import slack_config

    setup_logging()
    with open_container() as c:
        scrub_logs(c.settings)
        config = slack_config(c.settings)  # a missing Slack token fails before anything is opened
        if not c.settings.discord_token:
            raise ConfigError(NO_TOKEN)
        c.require_model()
        c.warm_up()  # the model and the passage store start while it connects
        running = start_slack(c, config)
        sigterm_interrupts()  # SIGTERM stops both adapters the way Ctrl-C does
        try:
            asyncio.run(run_discord(c, sync))  # starts the scheduler with both deliveries registered
        except KeyboardInterrupt:
            pass
        finally:
            running.close()
