"""The Bolt app: Slack events, slash commands and picker actions translated into SlackBot calls. Every listener
only schedules work and returns, so Slack gets its ack at once."""

from __future__ import annotations

import secrets
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from adapters.slack.bot import SlackBot
from adapters.slack.commands import COMMANDS, PICK_ACTION, picked, run_command, suggestions
from adapters.slack.home import EDIT_ACTION, EDIT_VIEW, check_edit, edit_modal, publish_home, save_edit, submitted
from adapters.slack.messages import channel_for, parse_message
from adapters.slack.replies import apology

PRIVACY_CHANGES = ("channel_convert_to_private", "channel_convert_to_public")


def build_app(bot: SlackBot, client: WebClient, signing_secret: str = "") -> App:
    """A Bolt app on `client` (token and base URL). Without a signing secret it serves Socket Mode only: a random
    secret makes every HTTP request fail its signature check.

    Listeners run before the ack is sent (process_before_response) but only queue work, so events reach each
    channel's lane in the order Slack delivered them."""
    app = App(client=client, signing_secret=signing_secret or secrets.token_hex(32), process_before_response=True,
              name="membot", token_verification_enabled=False)
    register(app, bot)
    return app


def _team(body: dict[str, Any], context: BoltContext) -> str:
    return str(context.team_id or body.get("team_id") or (body.get("team") or {}).get("id")
               or context.enterprise_id or "")


def register(app: App, bot: SlackBot) -> None:
    max_mb = bot.max_file_bytes / 1e6

    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        if not bot.first_delivery(body):
            return
        if event.get("subtype") in PRIVACY_CHANGES:  # the channel's privacy changed: ask conversations.info again
            bot.privacy.forget(str(event.get("channel") or ""))
        msg = parse_message(event, _team(body, context), context.bot_user_id or "")
        if msg is not None:
            bot.message(client, msg, context.bot_user_id or "")

    def on_file_shared(body: dict[str, Any], event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        if bot.first_delivery(body) and event.get("channel_id") and event.get("file_id"):
            bot.file_shared(client, _team(body, context), event["channel_id"], event.get("user_id") or "",
                            event["file_id"])

    def on_command(ack: Ack, command: dict[str, Any], respond: Respond, context: BoltContext,
                   client: WebClient) -> None:
        ack()
        user = str(command["user_id"])
        place = channel_for(_team(command, context), command["channel_id"], user)
        bot.respond_later(respond, lambda: run_command(bot.core, command["command"], command.get("text") or "",
                                                       place, max_mb, command.get("user_name") or "", user,
                                                       lambda: bot.people.is_admin(client, user)))

    def on_pick(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond,
                context: BoltContext) -> None:
        ack()
        place = channel_for(_team(body, context), body["channel"]["id"], body["user"]["id"])
        bot.respond_later(respond, lambda: picked(bot.core, place, action["selected_option"]["value"]))

    def on_suggest(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
        place = channel_for(_team(body, context), channel, body["user"]["id"])
        ack(options=suggestions(bot.core, place, str(body.get("value") or "")))

    def on_file_deleted(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        if bot.first_delivery(body) and event.get("file_id"):
            scope = f"slack:{_team(body, context)}"
            bot.later(lambda: bot.core.file_deleted(scope, str(event["file_id"])), "a deleted file's removal")

    def on_home(body: dict[str, Any], event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        if event.get("tab") == "home" and event.get("user"):
            bot.later(lambda: publish_home(bot.core, client, _team(body, context), event["user"]), "App Home")

    def on_edit(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext,
                client: WebClient) -> None:
        ack()  # views.open must follow within 3 s of the click: the trigger expires
        team, user = _team(body, context), body["user"]["id"]
        bot.later(lambda: client.views_open(trigger_id=body["trigger_id"],
                                            view=edit_modal(bot.core, team, user, action["value"])), "an edit")

    def on_save(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext,
                client: WebClient) -> None:
        channel, label, text = submitted(view)
        place = channel_for(_team(body, context), channel, body["user"]["id"])
        errors = check_edit(bot.core, place, label, text)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        bot.later(lambda: save_edit(bot.core, client, place, body["user"]["id"], label, text), "a memory edit")

    def on_error(error: Exception, body: dict[str, Any]) -> None:
        apology(f"a Slack listener failed on {body.get('type') or 'a request'}", error)

    app.event("app_mention")(on_message)
    app.event("message")(on_message)
    app.event("file_shared")(on_file_shared)
    app.event("file_deleted")(on_file_deleted)
    for name in COMMANDS:
        app.command(name)(on_command)
    app.action(PICK_ACTION)(on_pick)
    app.options(PICK_ACTION)(on_suggest)
    app.event("app_home_opened")(on_home)
    app.action(EDIT_ACTION)(on_edit)
    app.view(EDIT_VIEW)(on_save)
    app.error(on_error)
