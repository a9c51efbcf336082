"""Logs without secrets: every handler of the root logger masks the configured secrets and key-shaped text."""

from __future__ import annotations

import logging

from pydantic import SecretStr

from agent.redact import ScrubbingFilter
from bot.settings import SECRET_FIELDS, Settings


def secret_values(settings: Settings) -> list[str]:
    values = (getattr(settings, name) for name in sorted(SECRET_FIELDS))
    return [v.get_secret_value() if isinstance(v, SecretStr) else str(v) for v in values if v]


def scrub_logs(settings: Settings | None, handlers: list[logging.Handler] | None = None) -> None:
    """Add the scrubbing filter to `handlers` (default: the root logger's), once each."""
    found = ScrubbingFilter(secret_values(settings) if settings is not None else [])
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(found)
