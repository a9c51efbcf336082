"""The chat model behind a small interface, over any OpenAI-compatible endpoint via the `openai` package."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.errors import UserError

log = logging.getLogger(__name__)
_OVERFLOW = re.compile(r"context (length|size|window)|too many tokens|prompt is too long", re.I)


class LLMUnavailable(UserError):
    """The model could not be reached or kept failing after the retries; the text says why."""


class ContextOverflow(LLMUnavailable):
    """The endpoint refused the prompt as longer than the model's context window."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the raw JSON text exactly as the model wrote it


@dataclass(frozen=True)
class Completion:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)


class ChatModel(Protocol):
    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Completion:
        ...


class OpenAIChat:
    """Retries (with backoff, honouring Retry-After) on rate limits, 5xx, time-outs and dropped connections."""

    def __init__(self, model: str, api_key: str | None, base_url: str | None, timeout: float = 120.0,
                 max_retries: int = 4) -> None:
        from openai import OpenAI

        self.model = model
        self._client = OpenAI(api_key=api_key or "not-needed", base_url=base_url, timeout=timeout,
                              max_retries=max_retries)

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Completion:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            kwargs.update(tools=tools, tool_choice="auto")
        try:
            response = self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise LLMUnavailable("The model did not answer in time (after several tries).") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable("The model endpoint could not be reached (after several tries).") from exc
        except openai.RateLimitError as exc:
            raise LLMUnavailable("The model is rate limited right now (after several tries).") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 400 and _overflow(exc):
                raise ContextOverflow(f"The prompt is longer than the model's context window: {_short(exc)} "
                                      "Set MEMBOT_CONTEXT_WINDOW to the model's real window.") from exc
            raise LLMUnavailable(f"The model endpoint answered HTTP {exc.status_code}: {_short(exc)}") from exc
        except openai.APIError as exc:  # e.g. a response that does not parse
            raise LLMUnavailable(f"The model endpoint gave an unusable answer: {_short(exc)}") from exc
        if not response.choices:
            raise LLMUnavailable("The model returned no answer.")
        message = response.choices[0].message
        calls = [ToolCall(c.id, c.function.name, c.function.arguments or "{}")
                 for c in (message.tool_calls or []) if getattr(c, "function", None) is not None]
        return Completion(message.content or "", calls)


def _overflow(exc: Exception) -> bool:
    """OpenAI says code context_length_exceeded; vLLM "maximum context length"; llama.cpp "context size"."""
    code = getattr(exc, "code", None)
    return code == "context_length_exceeded" or bool(_OVERFLOW.search(str(getattr(exc, "message", exc))))


def _short(exc: Exception) -> str:
    """The endpoint's own error message (not the client's "Error code: 503 - {...}"), short, as a sentence."""
    body = getattr(exc, "body", None)
    text = body.get("message") if isinstance(body, dict) else None
    text = " ".join(str(text or getattr(exc, "message", exc)).split())
    text = text if len(text) < 300 else text[:300] + "..."
    return text if text.endswith((".", "!", "?")) else text + "."
