"""`membot serve discord`: the click command, registered by the `serve` group (bot/serve.py)."""

from __future__ import annotations

import click


@click.command("discord")
@click.option("--sync", is_flag=True,
              help="Register the slash commands with Discord globally (once, and after upgrades; Discord takes up "
                   "to an hour to show them). With DISCORD_GUILD_ID set they sync to that server at every start.")
def discord_command(sync: bool) -> None:
    """Run the Discord bot: each channel gets its own agent; mention the bot to talk to it."""
    from bot.container import open_container
    from bot.run_discord import serve_discord

    with open_container() as container:
        serve_discord(container, sync)
