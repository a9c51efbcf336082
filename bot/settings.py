"""The one settings object, on pydantic-settings: environment variables over an optional `~/.membot/config.toml`
over defaults, read once. A new setting is one field below; its variable is MEMBOT_<NAME> unless an alias says
otherwise, and its name in config.toml is the field's name."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from agent.errors import ConfigError
from agent.redact import mask_uri

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2-onnx-int8"  # agent.embeddings.models.DEFAULT_MODEL, without importing numpy
DEFAULT_OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic would read `true` as 1
        raise ValueError("a number, not true/false")
    return value


def _whole_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # an id written as a TOML number, say
    return value


Whole = Annotated[int, BeforeValidator(_not_bool)]
Number = Annotated[float, BeforeValidator(_not_bool)]
Text = Annotated[str, BeforeValidator(_whole_as_text)]


class Settings(BaseSettings):
    """Everything membot can be configured with. Built by `load_settings`, never from os.environ elsewhere."""

    model_config = SettingsConfigDict(env_prefix="MEMBOT_", env_ignore_empty=True, extra="forbid", frozen=True,
                                      allow_inf_nan=False, validate_by_name=True, validate_by_alias=True)

    home: Path
    database_url: Text = ""  # default: SQLite in home
    milvus_uri: Text = ""  # default: Milvus Lite in home
    milvus_prefix: Text = ""  # Milvus names start with it; empty: derived from database_url (see milvus_names)
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: Text = DEFAULT_LOCAL_MODEL
    embedding_batch_size: Whole = 32
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: Text | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    llm_model: Text = "gpt-4o-mini"
    context_window: Whole = 8192
    max_steps: Whole = 8
    turn_workers: Whole = 8  # turns of all agents run on this many threads at most (FIFO per agent)
    shutdown_grace: Number = 10.0  # seconds in-flight turns get at shutdown before they are abandoned uncommitted
    inbox_lease_seconds: Number = 60.0  # a question's lease: this long after its process died, another answers it
    llm_timeout: Number = 120.0
    llm_retries: Whole = 4
    max_tokens: Whole = 0  # the longest answer asked of the model; 0: min(512, context_window // 8)
    reply_mode: Literal["auto", "strict"] = "auto"  # strict: only send_message reaches people (agent/reply_policy.py)
    llm_stream: Literal["on", "off"] = "off"  # on: ask for SSE streams, so a reply can be shown while it grows
    stream_replies: Literal["on", "off"] = "on"  # with llm_stream on: show Slack/Discord replies as they grow
    chunk_tokens: Whole = 300
    chunk_overlap: Whole = 20
    max_file_mb: Number = 50.0
    public_uploads: Literal["workspace", "channel"] = "workspace"  # who sees a public channel's uploads
    max_pages: Whole = 5_000  # pages of one file
    max_text_chars: Whole = 10_000_000  # text one file may expand to
    max_page_chars: Whole = 1_000_000  # text of one PDF page
    max_expanded_mb: Number = 200.0  # decompressed bytes of one file (zip members, PDF content streams)
    parse_seconds: Number = 120.0  # time to parse one file in the parser process
    parse_memory_mb: Whole = 1536  # the parser process's address space (RLIMIT_AS)
    search_cache_rows: Whole = 2_000_000
    timezone: Text = "UTC"  # a channel's time zone for schedules until it sets its own
    schedule_max_per_channel: Whole = 25  # active schedules per channel
    schedule_min_interval_minutes: Number = 10.0  # the shortest gap between firings of a repeating schedule
    schedule_grace_minutes: Number = 15.0  # a firing missed while the bot was down still runs if this late at most
    schedule_poll_seconds: Number = 30.0  # how often the scheduler checks leadership and jobs of other processes
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")  # xoxb-...
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")  # xapp-... (Socket)
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")  # HTTP mode
    slack_mode: Text = "socket"  # socket | http
    slack_host: Text = "127.0.0.1"  # HTTP mode: the address to listen on (behind a proxy; 0.0.0.0 for all)
    slack_port: Whole = 3000
    slack_path: Text = "/slack/events"
    slack_api_url: Text = "https://slack.com/api/"  # another for GovSlack, or a fake in tests
    slack_file_hosts: Text = "https://files.slack.com,https://files.slack-gov.com"  # where uploads are fetched from
    discord_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_TOKEN")
    discord_guild_id: Text | None = Field(default=None, validation_alias="DISCORD_GUILD_ID")  # sync commands there

    @model_validator(mode="before")
    @classmethod
    def _defaults_in_home(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("home") is not None:
            home = Path(data["home"])
            data.setdefault("database_url", f"sqlite:///{home / 'membot.db'}")
            data.setdefault("milvus_uri", str(home / "milvus.db"))
            if data.get("embedding_provider") == "openai" and "embedding_model" not in data:
                data["embedding_model"] = DEFAULT_OPENAI_EMBEDDING_MODEL
        return data

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("milvus_uri")
    @classmethod
    def _expand_local_path(cls, value: str) -> str:
        return value if "://" in value else str(Path(value).expanduser())

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then config.toml (already read by `load_settings`)."""
        inputs = _inputs.get() or _Inputs(os.environ, {})
        return init_settings, _Environment(settings_cls, inputs.environ), InitSettingsSource(settings_cls, inputs.file)

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

    @property
    def milvus_names(self) -> str:
        """The prefix of this deployment's Milvus collections. Deployments that share a Milvus server keep apart
        by their databases: the default is a hash of the database URL (never the URL, which may hold a
        password). A Milvus Lite file belongs to one deployment, and keeps the plain `membot` it always had."""
        if self.milvus_prefix:
            return self.milvus_prefix
        if self.milvus_is_local:
            return "membot"
        return "membot_" + hashlib.sha256(self.database_url.encode()).hexdigest()[:10]

    def describe(self) -> dict[str, str]:
        """Settings as text for display, with secrets masked."""
        shown = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                plain = value.get_secret_value()
                value = ("****" + plain[-4:] if len(plain) > 8 else "****") if plain else ""
            elif isinstance(value, str):
                value = mask_uri(value)  # a password in MEMBOT_DATABASE_URL or MEMBOT_MILVUS_URI
            shown[name] = "" if value is None else str(value)
        return shown


def reveal(secret: SecretStr | None) -> str | None:
    """A secret setting's text, for the one client that needs it (never for display or logs)."""
    return secret.get_secret_value() if secret is not None else None


# name in config.toml / Settings -> environment variable
ENV_NAMES: dict[str, str] = {name: str(f.validation_alias or f"MEMBOT_{name.upper()}")
                             for name, f in Settings.model_fields.items()}
SECRET_FIELDS = frozenset(name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation))
PROVIDERS = ("local", "openai")


@dataclass(frozen=True)
class _Inputs:
    environ: Mapping[str, str]
    file: dict[str, Any]


_inputs: ContextVar[_Inputs | None] = ContextVar("membot_settings_inputs", default=None)


class _Environment(EnvSettingsSource):
    """The environment source over a given mapping (os.environ in use; a dict in tests)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by _load_env_vars, which the base class calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


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
    return _build(home, env, read_config_file(home / "config.toml"))


def _build(home: Path, env: Mapping[str, str], file: dict[str, Any]) -> Settings:
    token = _inputs.set(_Inputs(env, {k: v for k, v in file.items() if k != "home"}))
    try:
        settings = Settings(home=home)
    except ValidationError as exc:
        raise _config_error(exc) from None
    finally:
        _inputs.reset(token)
    _check(settings)
    return settings


_BY_VARIABLE = {var: name for name, var in ENV_NAMES.items()}
_MUST: dict[object, str] = {int: "a whole number", float: "a number", str: "text", SecretStr: "text"}


def _base(annotation: Any) -> Any:
    """int for `Whole | None`, Literal for `Literal[...]`: the type a value must have."""
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return get_origin(annotation) or annotation


def _choices(annotation: Any) -> tuple[str, ...]:
    """The values of a `Literal[...]` field (also inside `| None`)."""
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return tuple(str(a) for a in get_args(annotation))


def _config_error(exc: ValidationError) -> ConfigError:
    """The first problem, as one sentence naming the variable and what it must be; a secret is never repeated."""
    error = exc.errors()[0]
    where = str(error["loc"][0]) if error["loc"] else ""
    name = _BY_VARIABLE.get(where, where)
    label = ENV_NAMES.get(name, name or "A setting")
    got = "" if name in SECRET_FIELDS else f", got {error.get('input')!r}"
    if error["type"] == "finite_number":
        return ConfigError(f"{label} must be a finite number{got}.")
    field = Settings.model_fields.get(name)
    base = _base(field.annotation) if field else None
    must = "one of " + ", ".join(_choices(field.annotation)) if field and base is Literal else _MUST.get(base)
    return ConfigError(f"{label} must be {must}{got}." if must else f"{label}: {error['msg']}{got}.")


def _check(settings: Settings) -> None:
    """Rules across settings, after each has its type."""
    if settings.chunk_overlap >= settings.chunk_tokens:
        raise ConfigError("MEMBOT_CHUNK_OVERLAP must be smaller than MEMBOT_CHUNK_TOKENS.")
    if settings.max_file_mb <= 0 or settings.embedding_batch_size <= 0:
        raise ConfigError("MEMBOT_MAX_FILE_MB and MEMBOT_EMBEDDING_BATCH_SIZE must be positive.")
    _check_model_settings(settings)
    if settings.max_steps < 1 or settings.llm_timeout <= 0 or settings.llm_retries < 0:
        raise ConfigError("MEMBOT_MAX_STEPS and MEMBOT_LLM_TIMEOUT must be positive, MEMBOT_LLM_RETRIES >= 0.")
    if settings.turn_workers < 1 or settings.shutdown_grace < 0:
        raise ConfigError("MEMBOT_TURN_WORKERS must be at least 1 and MEMBOT_SHUTDOWN_GRACE at least 0 seconds.")
    if settings.inbox_lease_seconds < 1:
        raise ConfigError("MEMBOT_INBOX_LEASE_SECONDS must be at least 1 second.")
    _check_schedule_settings(settings)
    _check_limit_settings(settings)
    if settings.milvus_prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", settings.milvus_prefix):
        raise ConfigError(f"MEMBOT_MILVUS_PREFIX must be a letter or _ followed by up to 63 letters, digits or _ "
                          f"(Milvus names allow no other characters), got {settings.milvus_prefix!r}.")
    if settings.discord_guild_id is not None and not settings.discord_guild_id.strip().isdigit():
        raise ConfigError(f"DISCORD_GUILD_ID must be a server id (digits), got {settings.discord_guild_id!r}.")


def _check_model_settings(settings: Settings) -> None:
    from agent.overflow import MIN_WINDOW

    if settings.context_window < MIN_WINDOW:
        raise ConfigError(f"MEMBOT_CONTEXT_WINDOW must be at least {MIN_WINDOW} tokens, got "
                          f"{settings.context_window}: membot's instructions and tool schemas alone take about "
                          "1,300. Serve the model with a larger context (docs/models.md).")
    if settings.max_tokens < 0 or settings.max_tokens > settings.context_window // 2:
        raise ConfigError(f"MEMBOT_MAX_TOKENS must be between 1 and half of MEMBOT_CONTEXT_WINDOW "
                          f"({settings.context_window // 2}), or 0 for automatic; got {settings.max_tokens}.")


def _check_limit_settings(settings: Settings) -> None:
    for name in ("max_pages", "max_text_chars", "max_page_chars", "max_expanded_mb", "parse_seconds"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{ENV_NAMES[name]} must be positive, got {getattr(settings, name)}.")
    if settings.parse_memory_mb < 256:  # the parser's interpreter and libraries alone take ~100 MB of address space
        raise ConfigError(f"MEMBOT_PARSE_MEMORY_MB must be at least 256, got {settings.parse_memory_mb}.")


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
    current = {name: getattr(settings, name) for name in Settings.model_fields if name != "home"}
    _build(settings.home, {}, {**current, **{k: v for k, v in merged.items() if k != "home"}})
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
