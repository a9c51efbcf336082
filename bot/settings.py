"""The one settings object: environment variables over an optional `~/.membot/config.toml`, read once."""

from __future__ import annotations

import dataclasses
import json
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
SECRET_FIELDS = frozenset({"openai_api_key"})


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
    chunk_tokens: int = 300
    chunk_overlap: int = 20
    max_file_mb: float = 50.0
    search_cache_rows: int = 2_000_000

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

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
    "chunk_tokens": "MEMBOT_CHUNK_TOKENS",
    "chunk_overlap": "MEMBOT_CHUNK_OVERLAP",
    "max_file_mb": "MEMBOT_MAX_FILE_MB",
    "search_cache_rows": "MEMBOT_SEARCH_CACHE_ROWS",
}
PROVIDERS = ("local", "openai")


def default_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("MEMBOT_HOME") or Path(env.get("HOME") or Path.home()) / ".membot").expanduser()


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
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
        kind = types[name]
        try:
            if "int" in str(kind) and "|" not in str(kind):
                value = int(value)
            elif kind == "float":
                value = float(value)
            elif name == "home":
                value = Path(value).expanduser()
            elif name == "milvus_uri" and "://" not in str(value):
                value = str(Path(str(value)).expanduser())
        except ValueError as exc:
            raise ConfigError(f"{ENV_NAMES.get(name, name)} must be a number, got {value!r}.") from exc
        kwargs[name] = value
    settings = Settings(**kwargs)
    if settings.embedding_provider not in PROVIDERS:
        raise ConfigError(
            f"MEMBOT_EMBEDDING_PROVIDER must be one of {', '.join(PROVIDERS)}, got {settings.embedding_provider!r}."
        )
    if settings.chunk_overlap >= settings.chunk_tokens:
        raise ConfigError("MEMBOT_CHUNK_OVERLAP must be smaller than MEMBOT_CHUNK_TOKENS.")
    if settings.max_file_mb <= 0 or settings.embedding_batch_size <= 0:
        raise ConfigError("MEMBOT_MAX_FILE_MB and MEMBOT_EMBEDDING_BATCH_SIZE must be positive.")
    if settings.context_window < 1024:
        raise ConfigError(f"MEMBOT_CONTEXT_WINDOW must be at least 1024 tokens, got {settings.context_window}.")
    if settings.max_steps < 1 or settings.llm_timeout <= 0 or settings.llm_retries < 0:
        raise ConfigError("MEMBOT_MAX_STEPS and MEMBOT_LLM_TIMEOUT must be positive, MEMBOT_LLM_RETRIES >= 0.")
    return settings


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
            text = json.dumps(str(value)) if isinstance(value, (str, Path)) else json.dumps(value)
            lines.append(f"{name} = {text}\n")
    path.write_text("".join(lines), encoding="utf-8")
    if "openai_api_key" in merged:
        path.chmod(0o600)
    return path
