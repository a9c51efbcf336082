"""The chat model behind a small interface, over any OpenAI-compatible endpoint via the `openai` package.

The answer is read from the raw HTTP body, not the client's typed model, so that what real servers send
(a stream nobody asked for, `arguments` as an object, tool calls in the content) is understood rather than
crashing the turn. Errors are judged with the table in agent/llm_errors.py before any retry.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.answers import arguments_text, calls_in_content, tool_name
from agent.errors import UserError
from agent.llm_errors import OVERFLOW, PERMANENT, Diagnosis, diagnose, error_text, shorten
from agent.sse import DraftSink, StreamError, assemble

log = logging.getLogger(__name__)
DEFAULT_MAX_TOKENS = 512


class LLMUnavailable(UserError):
    """The model could not be reached or kept failing after the retries; the text says why."""


class ContextOverflow(LLMUnavailable):
    """The endpoint refused the prompt as longer than the model's context window."""

    def __init__(self, text: str, diagnosis: Diagnosis | None = None) -> None:
        super().__init__(text)
        self.diagnosis = diagnosis


class ModelMisconfigured(LLMUnavailable):
    """Retrying cannot help: the model or server setup must change (the text names the fix)."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text; an object the server sent is serialized, malformed text is kept as written


@dataclass(frozen=True)
class Completion:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    finish_reason: str = "stop"
    calls_from_content: bool = False  # the tool calls were written into the content, not sent as tool_calls


class ChatModel(Protocol):
    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 on_draft: DraftSink | None = None) -> Completion:
        ...


class OpenAIChat:
    """Retries (with backoff, honouring Retry-After) on rate limits, 5xx, time-outs and dropped connections,
    but never an error the table knows as permanent or as a context overflow."""

    def __init__(self, model: str, api_key: str | None, base_url: str | None, timeout: float = 120.0,
                 max_retries: int = 4, max_tokens: int = DEFAULT_MAX_TOKENS, stream: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from openai import OpenAI

        self.model = model
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.stream = stream
        self._sleep = sleep
        self._client = OpenAI(api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0)

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 on_draft: DraftSink | None = None) -> Completion:
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens}
        if tools:
            kwargs.update(tools=tools, tool_choice="auto")
        names = {t["function"]["name"] for t in tools or []}
        for attempt in range(self.max_retries + 1):
            try:
                return self._once(kwargs, names, on_draft, self.stream)
            except _Retry as retry:
                if attempt == self.max_retries:
                    raise LLMUnavailable(f"{retry.text} (after {attempt + 1} tries).") from retry.__cause__
                self._sleep(retry.wait if retry.wait is not None else min(8.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")

    @property
    def client(self) -> Any:
        return self._client

    def raw(self, on_draft: DraftSink | None = None, stream: bool = False, **kwargs: Any) -> Completion:
        """One request with exactly these parameters and no retries (for `membot doctor`)."""
        names = {t["function"]["name"] for t in kwargs.get("tools") or []}
        try:
            return self._once({"model": self.model, **kwargs}, names, on_draft, stream)
        except _Retry as retry:
            raise LLMUnavailable(retry.text + ".") from retry.__cause__

    def _once(self, kwargs: dict[str, Any], names: set[str], on_draft: DraftSink | None,
              stream: bool) -> Completion:
        import openai

        try:
            if stream:
                return self._streamed(kwargs, names, on_draft)
            # The plain JSON body as it is: `chat.completions.create` would first walk it (every message and tool
            # schema) against its TypedDicts, about a third of a turn's CPU, to change nothing in it.
            text = self._client.post("/chat/completions", body=kwargs, cast_to=str)
            return _read_body(text, names, on_draft)
        except openai.APITimeoutError as exc:
            raise _Retry("The model did not answer in time") from exc
        except openai.APIConnectionError as exc:
            raise _Retry("The model endpoint could not be reached") from exc
        except openai.APIStatusError as exc:
            raise _judged(exc.status_code, error_text(exc.body, exc.message), exc.body, exc.response) from exc
        except StreamError as exc:
            raise _judged(None, error_text(exc.body, str(exc)), exc.body, None) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a body that does not parse
            raise LLMUnavailable(f"The model endpoint gave an unusable answer: {shorten(str(exc))}") from exc

    def _streamed(self, kwargs: dict[str, Any], names: set[str], on_draft: DraftSink | None) -> Completion:
        params = {**kwargs, "stream": True, "stream_options": {"include_usage": True}}
        with self._client.chat.completions.with_streaming_response.create(**params) as response:
            got = assemble(response.iter_lines(), on_draft)
        usage = got.usage or {}
        return _completion(got.as_message(), got.finish_reason, int(usage.get("prompt_tokens") or 0), names)


class _Retry(Exception):
    def __init__(self, text: str, wait: float | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.wait = wait


def _judged(status: int | None, text: str, body: Any, response: Any) -> Exception:
    """The exception for an error answer: overflow, misconfiguration (with its fix) or one worth a retry."""
    found = diagnose(status, text, body)
    where = f"HTTP {status}" if status else "an error in its stream"
    if found.kind == OVERFLOW:
        return ContextOverflow(f"The prompt is longer than the model's context window ({found.server}: "
                               f"{found.text})", found)
    headers = getattr(response, "headers", None) or {}
    if found.kind == PERMANENT:
        fix = f" Fix: {found.fix}" if found.fix else ""
        return ModelMisconfigured(f"The model endpoint answered {where}: {found.text}{fix}")
    if headers.get("x-should-retry") == "false":  # the server asks not to retry; the failure itself may pass
        return LLMUnavailable(f"The model endpoint answered {where}: {found.text}")
    return _Retry(f"The model endpoint answered {where}: {found.text.rstrip('.')}", _retry_after(headers))


def _retry_after(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name)) * scale
        except (TypeError, ValueError):
            continue
        if 0 <= value <= 60:
            return value
    return None


def _read_body(text: str, names: set[str], on_draft: DraftSink | None) -> Completion:
    """A chat.completion body, or an event stream sent although we did not ask for one."""
    if text.lstrip().startswith("data:"):
        got = assemble(text.splitlines(), on_draft)
        usage = got.usage or {}
        return _completion(got.as_message(), got.finish_reason, int(usage.get("prompt_tokens") or 0), names)
    body = json.loads(text)
    if isinstance(body, dict) and "error" in body and not body.get("choices"):
        raise StreamError(body["error"])  # an error answered with HTTP 200 (some proxies do)
    choices = body.get("choices") or []
    if not choices:
        raise LLMUnavailable("The model returned no answer.")
    usage = body.get("usage") or {}
    return _completion(choices[0].get("message") or {}, choices[0].get("finish_reason"),
                       int(usage.get("prompt_tokens") or 0), names)


def _completion(message: dict[str, Any], finish: str | None, prompt_tokens: int, names: set[str]) -> Completion:
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    calls = [ToolCall(str(c.get("id") or ""), tool_name(str(c["function"].get("name") or "")),
                      arguments_text(c["function"].get("arguments")))
             for c in message.get("tool_calls") or [] if isinstance(c, dict) and isinstance(c.get("function"), dict)]
    from_content = False
    if not calls and names:
        content, found = calls_in_content(str(content), names)
        calls = [ToolCall("", c.name, c.arguments) for c in found]
        from_content = bool(found)
    return Completion(str(content), calls, prompt_tokens, finish or "stop", from_content)
