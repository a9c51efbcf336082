"""Every error wording we know from OpenAI-compatible servers, in one table: what it means, which server says
it, and the fix to tell the operator. The client consults it before deciding whether a failure is worth a retry.

Kinds:
  overflow   the prompt does not fit the model's window: summarize and try again, never plain retries
  permanent  the setup is wrong (no tool support, a missing server flag, a bad key, a request shape the server
             refuses): retrying cannot help, so the person is told once, with the fix
Anything not in the table is judged by its status: 408, 409, 429 and 5xx are retried, the rest are permanent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.redact import scrub

OVERFLOW = "overflow"
PERMANENT = "permanent"


@dataclass(frozen=True)
class Known:
    server: str
    kind: str
    pattern: re.Pattern[str]
    fix: str = ""
    statuses: tuple[int, ...] = ()  # empty: whatever the status (llama-server answered 400 or 500 over versions)


def _re(text: str) -> re.Pattern[str]:
    return re.compile(text, re.I | re.S)


# Named groups: `window` is the server's own context size, `asked` the tokens it counted for the request.
KNOWN: tuple[Known, ...] = (
    # overflow ---------------------------------------------------------------------------------------------
    Known("OpenAI / vLLM", OVERFLOW, _re(r"maximum context length is (?P<window>\d+) tokens.{0,80}?"
                                         r"(?:requested|resulted in) (?P<asked>\d+) tokens")),
    Known("vLLM (V1 engine)", OVERFLOW, _re(r"decoder prompt \(length (?P<asked>\d+)\) is longer than the maximum "
                                            r"model length of (?P<window>\d+)")),
    Known("vLLM", OVERFLOW, _re(r"prompt length of (?P<asked>\d+) is longer than the maximum model length of "
                                r"(?P<window>\d+)")),
    Known("llama-server", OVERFLOW, _re(r"request \((?P<asked>\d+) tokens\) exceeds the available context size "
                                        r"\((?P<window>\d+) tokens\)")),
    Known("llama-server", OVERFLOW, _re(r"exceeds the available context size")),  # 400, or 500 in older builds
    Known("llama-server (older builds, HTTP 500)", OVERFLOW, _re(r"context size has been exceeded")),
    Known("llama-server", OVERFLOW, _re(r"input is (?:too large|larger than the max context size)")),
    Known("llama-cpp-python", OVERFLOW, _re(r"requested tokens \((?P<asked>\d+)\) exceed context window of "
                                            r"(?P<window>\d+)")),
    Known("LM Studio (a plain-string error)", OVERFLOW, _re(r"trying to keep the first (?P<asked>\d+) tokens when "
                                                            r"context the overflows.{0,120}?context length of only "
                                                            r"(?P<window>\d+)")),
    Known("Ollama", OVERFLOW, _re(r"input length exceeds the (?:maximum )?context length")),
    Known("OpenAI", OVERFLOW, _re(r"context_length_exceeded")),
    Known("Anthropic-style proxies, OpenRouter", OVERFLOW, _re(r"prompt is too long|too many tokens|"
                                                                r"context (?:length|size|window) (?:exceeded|"
                                                                r"is too small)")),
    # permanent --------------------------------------------------------------------------------------------
    Known("Ollama", PERMANENT, _re(r"does not support tools"),
          "This model does not support tools: pick a tool-capable model, e.g. `ollama pull qwen2.5:7b` or "
          "llama3.1 (ollama.com/search?c=tools), and set MEMBOT_LLM_MODEL to it."),
    Known("llama-server", PERMANENT, _re(r"tools param requires --jinja"),
          "Restart llama-server with --jinja (tool calling needs the model's Jinja chat template)."),
    Known("vLLM", PERMANENT, _re(r"auto.{0,3} tool choice requires --enable-auto-tool-choice"),
          "Start vLLM with --enable-auto-tool-choice --tool-call-parser <parser for the model> "
          "(hermes for Qwen 2.5, llama3_json for Llama 3.1, mistral for Mistral)."),
    Known("LM Studio", PERMANENT, _re(r"no models? (?:is )?loaded"),
          "Load a model in LM Studio (`lms load <model>`) and set MEMBOT_LLM_MODEL to its identifier."),
    Known("any", PERMANENT, _re(r"model .{0,80}(?:not found|does not exist)|model_not_found"),
          "Set MEMBOT_LLM_MODEL to a model this server serves (`membot doctor` lists them)."),
    Known("any", PERMANENT, _re(r"."), "Check OPENAI_API_KEY: the server refused it.", statuses=(401, 403)),
    Known("any (pydantic / FastAPI servers)", PERMANENT,
          _re(r"validation error|input should be|field required|extra inputs are not permitted|"
              r"unprocessable|invalid type"),
          "The server refused the shape of membot's request; run `membot doctor` and report its output.",
          statuses=(400, 422, 500)),
)

RETRIED_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # overflow | permanent | transient
    text: str  # the server's own words, short
    server: str = ""  # which server's wording matched
    fix: str = ""
    window: int | None = None  # the server's context size, when it said
    asked: int | None = None  # the tokens it counted for our request, when it said


def diagnose(status: int | None, text: str, body: Any = None) -> Diagnosis:
    """What an error answer means. `text` is the server's message; `body` its parsed JSON, if any."""
    short = shorten(text)
    for known in KNOWN:
        if known.statuses and status not in known.statuses:
            continue
        match = known.pattern.search(text)
        if match is None:
            continue
        numbers = {k: int(v) for k, v in match.groupdict().items() if v}
        if isinstance(body, dict):  # llama-server adds the numbers as fields
            numbers.setdefault("window", _int(body.get("n_ctx")))
            numbers.setdefault("asked", _int(body.get("n_prompt_tokens")))
        return Diagnosis(known.kind, short, known.server, known.fix, numbers.get("window") or None,
                         numbers.get("asked") or None)
    if status is None or status in RETRIED_STATUSES or status >= 500:
        return Diagnosis("transient", short)
    return Diagnosis(PERMANENT, short, fix="Check the model settings with `membot doctor`.")


def error_text(body: Any, fallback: str) -> str:
    """The server's own message from an error body in any of the shapes servers use: OpenAI's
    {"error": {"message"}}, LM Studio's and Ollama's {"error": "text"}, FastAPI's {"detail": ...}, or plain text."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "msg"):
            value = body.get(key)
            if isinstance(value, (dict, list)):
                return error_text(value, fallback)
            if value:
                return str(value)
    if isinstance(body, list) and body:  # FastAPI validation details
        return "; ".join(error_text(item, "") for item in body[:3])
    return fallback


def shorten(text: str, limit: int = 300) -> str:
    text = scrub(" ".join(str(text).split()))  # endpoints echo the key back
    text = text if len(text) < limit else text[:limit] + "..."
    return text if text.endswith((".", "!", "?")) else text + "."


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
