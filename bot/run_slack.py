"""`membot serve slack`: check the Slack settings, build the Slack adapter on the container's services, and
serve it over Socket Mode (the default) or the HTTP Events API."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

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
from agent.chat import ChatCore
from agent.errors import ConfigError
from bot.container import Container
from bot.settings import Settings

log = logging.getLogger("membot.slack")
MODES = ("socket", "http")


@dataclass(frozen=True)
class SlackConfig:
    bot_token: str
    app_token: str
    signing_secret: str
    mode: str
    host: str
    port: int
    path: str
    api_url: str

    def __repr__(self) -> str:  # never print the tokens
        return f"SlackConfig(mode={self.mode!r}, host={self.host!r}, port={self.port}, path={self.path!r})"


def _token(value: str | None, var: str, prefix: str, what: str) -> str:
    token = (value or "").strip()
    if not token:
        raise ConfigError(f"{var} is not set: it is the {what}, starting {prefix}.")
    if not token.startswith(prefix):
        shown = token.split("-", 1)[0] + "-" if "-" in token[:6] else "something else"
        raise ConfigError(f"{var} must be the {what}, starting {prefix} (this one starts {shown}).")
    return token


def slack_config(settings: Settings, mode: str | None = None, port: int | None = None,
                 path: str | None = None) -> SlackConfig:
    """The Slack settings, checked; a ConfigError names the variable and the shape it needs."""
    mode = (mode or settings.slack_mode).lower()
    if mode not in MODES:
        raise ConfigError(f"MEMBOT_SLACK_MODE must be socket or http, got {mode!r}.")
    bot_token = _token(settings.slack_bot_token, "SLACK_BOT_TOKEN", "xoxb-",
                       "bot token from the app's OAuth & Permissions page")
    app_token = signing_secret = ""
    if mode == "socket":
        app_token = _token(settings.slack_app_token, "SLACK_APP_TOKEN", "xapp-",
                           "app-level token with connections:write from the app's Basic Information page")
    else:
        signing_secret = (settings.slack_signing_secret or "").strip()
        if not signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode needs the signing secret from the app's "
                              "Basic Information page (or use Socket Mode with SLACK_APP_TOKEN).")
    path = path or settings.slack_path
    if not path.startswith("/"):
        raise ConfigError(f"MEMBOT_SLACK_PATH must start with /, got {path!r}.")
    return SlackConfig(bot_token, app_token, signing_secret, mode, settings.slack_host,
                       settings.slack_port if port is None else port, path, settings.slack_api_url)


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


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # the default (5) resets connections when Slack sends a burst


class RunningSlack:
    """A started Slack adapter; `url` is the events URL in HTTP mode."""

    def __init__(self, bot: SlackBot, stop_delivery: Callable[[], None], socket: SocketModeHandler | None = None,
                 server: WSGIServer | None = None, url: str = "") -> None:
        self.bot, self.socket, self.server, self.url = bot, socket, server, url
        self.stop_delivery = stop_delivery
        self._thread: threading.Thread | None = None
        if server is not None:
            self._thread = threading.Thread(target=server.serve_forever, name="slack-http", daemon=True)
            self._thread.start()

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
    core = ChatCore(container.agents, container.loader, container.catalog, schedules=container.schedules)
    bot = SlackBot(core, int(container.settings.max_file_mb * 1_000_000), container.ledger)
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
        server = make_server(config.host, config.port, wsgi_app(app, config.path), server_class=_ThreadingServer,
                             handler_class=_QuietHandler)
        url = f"http://{config.host}:{server.server_address[1]}{config.path}"
        log.info("Slack: listening on %s (health: /health)", url)
    container.deliveries.register("slack", partial(deliver_scheduled, client, f"slack:{me.get('team_id')}"))
    return RunningSlack(bot, partial(container.deliveries.unregister, "slack"), socket, server, url)


def serve_slack(container: Container, mode: str | None = None, port: int | None = None,
                path: str | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = slack_config(container.settings, mode, port, path)
    _ = container.model  # fails here, before connecting, when no chat model is configured
    running = start_slack(container, config)
    container.start_scheduler()  # timed events of this workspace's agents post through the delivery above
    stop = threading.Event()
    _on_sigterm(stop)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        log.info("Slack: stopping; work in progress finishes first")
        running.close()


def _on_sigterm(stop: threading.Event) -> None:
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

