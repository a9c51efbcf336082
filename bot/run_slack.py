"""`membot serve slack`: build the Slack adapter on the container's services and serve it over Socket Mode (the
default) or the HTTP Events API. The settings checks are in bot/slack_config.py, the HTTP server in
bot/wsgi_server.py, the signals in bot/process.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any
from wsgiref.simple_server import WSGIServer

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from adapters.slack.app import build_app
from adapters.slack.bot import SlackBot
from adapters.slack.http import wsgi_app
from adapters.slack.replies import deliver_scheduled
from agent.errors import ConfigError
from bot.container import Container
from bot.logsafe import scrub_logs
from bot.process import setup_logging, wait_until_stopped
from bot.slack_config import SlackConfig, slack_config
from bot.wsgi_server import serve_wsgi

log = logging.getLogger("membot.slack")
SLACK_EDIT_SECONDS = 1.0  # chat.update: about one a second per channel


def streams(container: Container) -> bool:
    """Replies are shown while they grow when the model streams and MEMBOT_STREAM_REPLIES is on."""
    return container.settings.llm_stream == "on" and container.settings.stream_replies == "on"


def make_client(config: SlackConfig) -> WebClient:
    """A Web API client that waits out rate limits (429 + Retry-After) and retries transient failures."""
    handlers = [ConnectionErrorRetryHandler(max_retry_count=2), RateLimitErrorRetryHandler(max_retry_count=5),
                ServerErrorRetryHandler(max_retry_count=2)]
    base_url = config.api_url if config.api_url.endswith("/") else config.api_url + "/"
    return WebClient(token=config.bot_token, base_url=base_url, retry_handlers=handlers)


def check_token(client: WebClient) -> dict[str, Any]:
    try:
        return dict(client.auth_test().data)  # type: ignore[arg-type]
    except SlackApiError as exc:
        raise ConfigError(f"Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}): copy the bot token "
                          "again from the app's OAuth & Permissions page, and reinstall the app.") from exc


def check_app_token(client: WebClient, app_token: str) -> None:
    """Socket Mode's token, checked before connecting: the SDK would log and raise a traceback instead."""
    try:
        client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        raise ConfigError(f"Slack rejected SLACK_APP_TOKEN ({exc.response.get('error')}): create an app-level "
                          "token with the connections:write scope on the app's Basic Information page, and make "
                          "sure Socket Mode is enabled.") from exc


class RunningSlack:
    """A started Slack adapter; `url` is the events URL in HTTP mode."""

    def __init__(self, bot: SlackBot, stop_delivery: Callable[[], None], socket: SocketModeHandler | None = None,
                 server: WSGIServer | None = None, url: str = "") -> None:
        self.bot, self.socket, self.server, self.url = bot, socket, server, url
        self.stop_delivery = stop_delivery

    def close(self) -> None:
        self.stop_delivery()
        if self.socket is not None:
            self.socket.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.bot.close()


def start_slack(container: Container, config: SlackConfig | None = None) -> RunningSlack:
    """Connect (Socket Mode) or start listening (HTTP) and return at once. Timed events of the workspace's agents
    are posted through this adapter while it runs (the scheduler itself is started by serve_slack)."""
    config = config or slack_config(container.settings)
    client = make_client(config)
    me = check_token(client)
    if config.mode == "socket":
        check_app_token(client, config.app_token)
    bot = SlackBot(container.chat, int(container.settings.max_file_mb * 1_000_000), container.ledger,
                   file_origins=[h.strip() for h in container.settings.slack_file_hosts.split(",") if h.strip()],
                   stream_interval=SLACK_EDIT_SECONDS if streams(container) else 0.0)
    app = build_app(bot, client, config.signing_secret)
    log.info("Slack: workspace %s (%s) as @%s, %s mode", me.get("team"), me.get("team_id"), me.get("user"),
             config.mode)
    socket: SocketModeHandler | None = None
    server: WSGIServer | None = None
    url = ""
    if config.mode == "socket":
        # One dispatch thread: listeners only queue work, and events reach their channel's lane in order.
        socket = SocketModeHandler(app, config.app_token, web_client=client, concurrency=1)
        socket.connect()
    else:
        server = serve_wsgi(wsgi_app(app, config.path), config.host, config.port)
        url = f"http://{config.host}:{server.server_address[1]}{config.path}"
        log.info("Slack: listening on %s (health: /health)", url)
    container.deliveries.register("slack", partial(deliver_scheduled, client, f"slack:{me.get('team_id')}"))
    return RunningSlack(bot, partial(container.deliveries.unregister, "slack"), socket, server, url)


def serve_slack(container: Container, mode: str | None = None, port: int | None = None,
                path: str | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    setup_logging()
    scrub_logs(container.settings)
    config = slack_config(container.settings, mode, port, path)
    container.require_model()  # fails here, before connecting, when no chat model is configured
    container.warm_up()  # the model and the passage store start while it connects
    running = start_slack(container, config)
    container.start_scheduler()  # timed events of this workspace's agents post through the delivery above
    try:
        wait_until_stopped()
    finally:
        log.info("Slack: stopping; work in progress finishes first")
        running.close()
