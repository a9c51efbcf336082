"""`membot configure`: ask for each setting (like the original) or take flags, then write config.toml."""

from __future__ import annotations

from typing import Any

import click

from agent.redact import mask_uri
from bot.settings import DEFAULT_LOCAL_MODEL, DEFAULT_OPENAI_EMBEDDING_MODEL, Settings, write_config

DEFAULT_MODELS = {"local": DEFAULT_LOCAL_MODEL, "openai": DEFAULT_OPENAI_EMBEDDING_MODEL}


def run_configure(settings: Settings, values: dict[str, Any], interactive: bool) -> None:
    if interactive:
        values = ask(settings)
    path = write_config(settings, values)
    click.echo(f"Saved settings to {path}")


def _uri_prompt(label: str, current: str, show_default: bool = True) -> str:
    """Ask for a URI whose current value is shown with its password masked; Enter keeps the real one."""
    shown = mask_uri(current)
    answer = str(click.prompt(label, default=shown, show_default=show_default))
    return current if answer == shown else answer


def ask(settings: Settings) -> dict[str, Any]:
    values: dict[str, Any] = {}
    click.prompt("Select storage backend for archival data", type=click.Choice(["milvus"]), default="milvus")
    default_uri = str(settings.home / "milvus.db")
    values["milvus_uri"] = _uri_prompt(f"Enter the Milvus connection URI (Default: {default_uri})",
                                       settings.milvus_uri, show_default=False)
    values["database_url"] = _uri_prompt("Database URL for agents, messages and sources", settings.database_url)
    values["embedding_provider"] = click.prompt("Select embedding provider", type=click.Choice(["local", "openai"]),
                                                default=settings.embedding_provider)
    # A model of the other provider is never a sensible default: switching provider proposes its own default.
    model_default = settings.embedding_model
    if values["embedding_provider"] != settings.embedding_provider:
        model_default = DEFAULT_MODELS[values["embedding_provider"]]
    values["embedding_model"] = click.prompt("Embedding model", default=model_default)
    values["openai_base_url"] = click.prompt(
        "OpenAI-compatible endpoint (blank for api.openai.com; e.g. http://localhost:11434/v1 for Ollama)",
        default=settings.openai_base_url or "", show_default=False,
    ) or None
    key = click.prompt("OpenAI API key (blank to keep the current one)", default="", hide_input=True,
                       show_default=False)
    values["openai_api_key"] = key or None
    values["llm_model"] = click.prompt("Chat model", default=settings.llm_model)
    values["context_window"] = click.prompt("Context window (tokens)", default=settings.context_window, type=int)
    return values
