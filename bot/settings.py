"""The one settings object: environment variables over an optional `~/.membot/config.toml`, read once."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"
DEFAULT_OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
SECRET_FIELDS = frozenset({"openai_api_key", "discord_token", "slack_bot_token", "slack_app_token",
                           "slack_signing_secret"})


@dataclass(frozen=True)
class Settings:
    """Everything membot can be configured with. Built by `load_settings`, never from os.environ elsewhere."""

    home: Path
    database_url: str
    milvus_uri: str
    embedding_provider: str = "local"  # local | openai
    embedding_model: str = DEFAULT_LOCAL_MODEL
    embedding_batch_size: int = 32
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    context_window: int = 8192
    max_steps: int = 8
    llm_timeout: float = 120.0
    llm_retries: int = 4
    max_tokens: int = 0  # the longest answer asked of the model; 0: min(512, context_window // 8)
    reply_mode: str = "auto"  # auto | strict (only send_message reaches people); see agent/reply_policy.py
    llm_stream: str = "off"  # on: ask for SSE streams, so a reply can be shown while it grows
    chunk_tokens: int = 300
    chunk_overlap: int = 20
    max_file_mb: float = 50.0
    search_cache_rows: int = 2_000_000
    timezone: str = "UTC"  # a channel's time zone for schedules until it sets its own
    schedule_max_per_channel: int = 25  # active schedules per channel
    schedule_min_interval_minutes: float = 10.0  # the shortest gap between firings of a repeating schedule
    schedule_grace_minutes: float = 15.0  # a firing missed while the bot was down still runs if this late at most
    schedule_poll_seconds: float = 30.0  # how often the scheduler checks leadership and jobs of other processes
    slack_bot_token: str | None = field(default=None, repr=False)  # xoxb-...
    slack_app_token: str | None = field(default=None, repr=False)  # xapp-... (Socket Mode)
    slack_signing_secret: str | None = field(default=None, repr=False)  # HTTP mode
    slack_mode: str = "socket"  # socket | http
    slack_host: str = "0.0.0.0"  # HTTP mode: the address to listen on
    slack_port: int = 3000
    slack_path: str = "/slack/events"
    slack_api_url: str = "https://slack.com/api/"  # another for GovSlack, or a fake in tests
    discord_token: str | None = field(default=None, repr=False)
    discord_guild_id: str | None = None  # sync slash commands to this server at start (instant)

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def reply_tokens(self) -> int:
        """max_tokens as sent: a fixed share of small windows, so the prompt keeps room on a 2,048 window."""
        return self.max_tokens or min(512, self.context_window // 8)

    @property
    def milvus_is_local(self) -> bool:
        return "://" not in self.milvus_uri

    def describe(self) -> dict[str, str]:
        """Settings as text for display, with secrets masked."""
        shown = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = "****" + str(value)[-4:] if len(str(value)) > 8 else "****"
            shown[f.name] = "" if value is None else str(value)
        return shown


# name in config.toml / Settings -> environment variable
ENV_NAMES: dict[str, str] = {
    "home": "MEMBOT_HOME",
    "database_url": "MEMBOT_DATABASE_URL",
    "milvus_uri": "MEMBOT_MILVUS_URI",
    "embedding_provider": "MEMBOT_EMBEDDING_PROVIDER",
    "embedding_model": "MEMBOT_EMBEDDING_MODEL",
    "embedding_batch_size": "MEMBOT_EMBEDDING_BATCH_SIZE",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "llm_model": "MEMBOT_LLM_MODEL",
    "context_window": "MEMBOT_CONTEXT_WINDOW",
    "max_steps": "MEMBOT_MAX_STEPS",
    "llm_timeout": "MEMBOT_LLM_TIMEOUT",
    "llm_retries": "MEMBOT_LLM_RETRIES",
    "max_tokens": "MEMBOT_MAX_TOKENS",
    "reply_mode": "MEMBOT_REPLY_MODE",
    "llm_stream": "MEMBOT_LLM_STREAM",
    "chunk_tokens": "MEMBOT_CHUNK_TOKENS",
    "chunk_overlap": "MEMBOT_CHUNK_OVERLAP",
    "max_file_mb": "MEMBOT_MAX_FILE_MB",
    "search_cache_rows": "MEMBOT_SEARCH_CACHE_ROWS",
    "timezone": "MEMBOT_TIMEZONE",
    "schedule_max_per_channel": "MEMBOT_SCHEDULE_MAX_PER_CHANNEL",
    "schedule_min_interval_minutes": "MEMBOT_SCHEDULE_MIN_INTERVAL_MINUTES",
    "schedule_grace_minutes": "MEMBOT_SCHEDULE_GRACE_MINUTES",
    "schedule_poll_seconds": "MEMBOT_SCHEDULE_POLL_SECONDS",
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_mode": "MEMBOT_SLACK_MODE",
    "slack_host": "MEMBOT_SLACK_HOST",
    "slack_port": "MEMBOT_SLACK_PORT",
    "slack_path": "MEMBOT_SLACK_PATH",
    "slack_api_url": "MEMBOT_SLACK_API_URL",
    "discord_token": "DISCORD_TOKEN",
    "discord_guild_id": "DISCORD_GUILD_ID",
}
PROVIDERS = ("local", "openai")


def default_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("MEMBOT_HOME") or Path(env.get("HOME") or Path.home()) / ".membot").expanduser()


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}). Fix it or run `membot configure`.") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}). Fix it or run `membot configure`.") from exc
    unknown = sorted(set(data) - set(ENV_NAMES) - {"home"})
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}. Known: {', '.join(ENV_NAMES)}.")
    return data


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (highest priority) over the config file over defaults."""
    env = os.environ if env is None else env
    home = default_home(env)
    raw: dict[str, Any] = read_config_file(home / "config.toml")
    for name, var in ENV_NAMES.items():
        if env.get(var):
            raw[name] = env[var]
    raw["home"] = home
    raw.setdefault("database_url", f"sqlite:///{home / 'membot.db'}")
    raw.setdefault("milvus_uri", str(home / "milvus.db"))
    if raw.get("embedding_provider") == "openai" and "embedding_model" not in raw:
        raw["embedding_model"] = DEFAULT_OPENAI_EMBEDDING_MODEL
    return _validated(raw)


def _validated(raw: dict[str, Any]) -> Settings:
    kwargs: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(Settings)}
    for name, value in raw.items():
        kwargs[name] = _coerce(name, str(types[name]), value)
    settings = Settings(**kwargs)
    if settings.embedding_provider not in PROVIDERS:
        raise ConfigError(
            f"MEMBOT_EMBEDDING_PROVIDER must be one of {', '.join(PROVIDERS)}, got {settings.embedding_provider!r}."
        )
    if settings.chunk_overlap >= settings.chunk_tokens:
        raise ConfigError("MEMBOT_CHUNK_OVERLAP must be smaller than MEMBOT_CHUNK_TOKENS.")
    if settings.max_file_mb <= 0 or settings.embedding_batch_size <= 0:
        raise ConfigError("MEMBOT_MAX_FILE_MB and MEMBOT_EMBEDDING_BATCH_SIZE must be positive.")
    _check_model_settings(settings)
    if settings.max_steps < 1 or settings.llm_timeout <= 0 or settings.llm_retries < 0:
        raise ConfigError("MEMBOT_MAX_STEPS and MEMBOT_LLM_TIMEOUT must be positive, MEMBOT_LLM_RETRIES >= 0.")
    _check_schedule_settings(settings)
    if settings.discord_guild_id is not None and not settings.discord_guild_id.strip().isdigit():
        raise ConfigError(f"DISCORD_GUILD_ID must be a server id (digits), got {settings.discord_guild_id!r}.")
    return settings


def _check_model_settings(settings: Settings) -> None:
    from agent.overflow import MIN_WINDOW
    from agent.reply_policy import REPLY_MODES

    if settings.context_window < MIN_WINDOW:
        raise ConfigError(f"MEMBOT_CONTEXT_WINDOW must be at least {MIN_WINDOW} tokens, got "
                          f"{settings.context_window}: membot's instructions and tool schemas alone take about "
                          "1,300. Serve the model with a larger context (docs/models.md).")
    if settings.max_tokens < 0 or settings.max_tokens > settings.context_window // 2:
        raise ConfigError(f"MEMBOT_MAX_TOKENS must be between 1 and half of MEMBOT_CONTEXT_WINDOW "
                          f"({settings.context_window // 2}), or 0 for automatic; got {settings.max_tokens}.")
    if settings.reply_mode not in REPLY_MODES:
        raise ConfigError(f"MEMBOT_REPLY_MODE must be one of {', '.join(REPLY_MODES)}, got {settings.reply_mode!r}.")
    if settings.llm_stream not in ("on", "off"):
        raise ConfigError(f"MEMBOT_LLM_STREAM must be on or off, got {settings.llm_stream!r}.")


def _check_schedule_settings(settings: Settings) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"MEMBOT_TIMEZONE must be an IANA time zone such as Europe/Berlin or UTC, "
                          f"got {settings.timezone!r}.") from None
    if settings.schedule_max_per_channel < 1 or settings.schedule_min_interval_minutes <= 0:
        raise ConfigError("MEMBOT_SCHEDULE_MAX_PER_CHANNEL and MEMBOT_SCHEDULE_MIN_INTERVAL_MINUTES must be positive.")
    if settings.schedule_grace_minutes < 0 or settings.schedule_poll_seconds <= 0:
        raise ConfigError("MEMBOT_SCHEDULE_GRACE_MINUTES must be >= 0 and MEMBOT_SCHEDULE_POLL_SECONDS positive.")


def _coerce(name: str, kind: str, value: Any) -> Any:
    """One setting as its field's type; a value of the wrong kind (from the environment, where everything is
    text, or from config.toml) is a ConfigError naming the setting, never a crash later."""
    label = ENV_NAMES.get(name, name)
    if name == "home":
        return Path(value).expanduser()
    if value is None and "None" in kind:
        return None
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{label} must be a whole number, got {value!r}.")
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ConfigError(f"{label} must be a number, got {value!r}.") from None
        else:
            raise ConfigError(f"{label} must be a number, got {value!r}.")
        if not math.isfinite(number):
            raise ConfigError(f"{label} must be a finite number, got {value!r}.")
        return number
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an id written as a TOML number, say
    if not isinstance(value, str):
        raise ConfigError(f"{label} must be text, got {value!r}.")
    if name == "milvus_uri" and "://" not in value:
        return str(Path(value).expanduser())
    return value


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, everything else as is."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_config(settings: Settings, values: Mapping[str, Any]) -> Path:
    """Merge `values` into the config file and write it; returns its path. Secrets are written, never shown."""
    path = settings.config_path
    merged = read_config_file(path)
    merged.update({k: v for k, v in values.items() if v is not None})
    probe = dataclasses.replace(settings, **{k: v for k, v in merged.items() if k != "home"})
    _validated({**{f.name: getattr(probe, f.name) for f in fields(probe)}})
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# membot settings; environment variables override these.\n"]
    for name in ENV_NAMES:
        if name in merged and name != "home":
            value = merged[name]
            text = _toml_string(str(value)) if isinstance(value, (str, Path)) else json.dumps(value)
            lines.append(f"{name} = {text}\n")
    # The file may hold an API key: it is created owner-only (never readable by others, not even for a
    # moment) and swapped in whole, so a crash never leaves half a config.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("".join(lines))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
