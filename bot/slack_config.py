"""The Slack settings `membot serve slack` needs, checked: a ConfigError names the variable and the shape it
needs, before anything is opened."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import ConfigError
from bot.settings import Settings, reveal

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
    bot_token = _token(reveal(settings.slack_bot_token), "SLACK_BOT_TOKEN", "xoxb-",
                       "bot token from the app's OAuth & Permissions page")
    app_token = signing_secret = ""
    if mode == "socket":
        app_token = _token(reveal(settings.slack_app_token), "SLACK_APP_TOKEN", "xapp-",
                           "app-level token with connections:write from the app's Basic Information page")
    else:
        signing_secret = (reveal(settings.slack_signing_secret) or "").strip()
        if not signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode needs the signing secret from the app's "
                              "Basic Information page (or use Socket Mode with SLACK_APP_TOKEN).")
    path = path or settings.slack_path
    if not path.startswith("/"):
        raise ConfigError(f"MEMBOT_SLACK_PATH must start with /, got {path!r}.")
    return SlackConfig(bot_token, app_token, signing_secret, mode, settings.slack_host,
                       settings.slack_port if port is None else port, path, settings.slack_api_url)
