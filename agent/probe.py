"""Probing a chat endpoint the way membot will use it: is the model served, does it call tools, does it
stream, and how much prompt does it really accept. Each probe is one small request and returns a Finding with
the fix for a failure; `membot doctor` prints them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.context import count_tokens
from agent.llm import ContextOverflow, LLMUnavailable, OpenAIChat
from agent.overflow import MIN_WINDOW, SERVE_BIGGER

PASS, WARN, FAIL = "ok", "warn", "fail"
_PING_TOOL = {"type": "function", "function": {
    "name": "send_message", "description": "Send a message to the person.",
    "parameters": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}}}
_PING = [{"role": "system", "content": "You are a test. Answer by calling the tool send_message with the message "
                                       "'pong'."},
         {"role": "user", "content": "ping"}]
_FILLER = "The quick brown fox jumps over the lazy dog near the river bank. "
NO_TOOLS_FIX = ("Use a tool-capable model and server setup: Ollama with a model tagged 'tools' (qwen2.5, llama3.1); "
                "llama-server --jinja; vLLM --enable-auto-tool-choice --tool-call-parser <parser>; see docs/models.md.")


@dataclass(frozen=True)
class Finding:
    status: str  # ok | warn | fail
    title: str
    detail: str
    fix: str = ""


def _failed(title: str, exc: Exception) -> Finding:
    text = str(exc)
    fix = text.split(" Fix: ", 1)[1] if " Fix: " in text else ""
    return Finding(FAIL, title, text.split(" Fix: ", 1)[0], fix)


def probe_model(chat: OpenAIChat) -> Finding:
    try:
        served = [m.id for m in chat.client.models.list()]
    except Exception as exc:  # many servers have no /models; that alone is not a failure
        return Finding(WARN, "model", f"The server does not list its models ({exc.__class__.__name__}).")
    if served and chat.model not in served:
        return Finding(FAIL, "model", f"{chat.model!r} is not among the served models: {', '.join(served[:10])}.",
                       "Set MEMBOT_LLM_MODEL to one of them.")
    return Finding(PASS, "model", f"{chat.model} is served.")


def probe_tools(chat: OpenAIChat) -> Finding:
    try:
        got = chat.raw(messages=_PING, tools=[_PING_TOOL], tool_choice="auto", max_tokens=128)
    except LLMUnavailable as exc:
        return _failed("tool calling", exc)
    if got.tool_calls and not got.calls_from_content:
        return Finding(PASS, "tool calling", "The model answered with a native tool call.")
    if got.tool_calls:
        return Finding(WARN, "tool calling", "The model writes tool calls into its text; membot reads them, but "
                                             "native tool calling is more reliable.", NO_TOOLS_FIX)
    said = " ".join(got.content.split())[:80] or "nothing"
    return Finding(FAIL, "tool calling", f"The model did not call the tool (it said: {said!r}). With "
                                         "MEMBOT_REPLY_MODE=auto people still get its words, but it cannot use "
                                         "memory.", NO_TOOLS_FIX)


def probe_stream(chat: OpenAIChat) -> Finding:
    drafts: list[str] = []
    try:
        got = chat.raw(messages=_PING, tools=[_PING_TOOL], tool_choice="auto", max_tokens=128, stream=True,
                       on_draft=drafts.append)
    except LLMUnavailable as exc:
        return _failed("streaming", exc)
    if not (got.content or got.tool_calls):
        return Finding(FAIL, "streaming", "The stream ended without an answer.", "Keep MEMBOT_LLM_STREAM=off.")
    return Finding(PASS, "streaming", "Streamed answers work (MEMBOT_LLM_STREAM=on can show replies growing).")


def probe_window(chat: OpenAIChat, window: int, reply_tokens: int) -> Finding:
    """Fill the configured window (less the reply room) and see whether the server takes it whole."""
    target = max(256, window - reply_tokens - 64)
    filler = _FILLER * max(1, target // max(1, count_tokens(_FILLER)))
    messages: list[dict[str, Any]] = [{"role": "user", "content": filler + "\nReply with the word ok."}]
    estimate = count_tokens(filler)
    try:
        got = chat.raw(messages=messages, max_tokens=1)
    except ContextOverflow as exc:
        real = exc.diagnosis.window if exc.diagnosis else None
        if real is not None and real < MIN_WINDOW:
            fix = f"The model's window ({real}) is below membot's minimum: {SERVE_BIGGER}, at least {MIN_WINDOW}."
        elif real is not None:
            fix = f"Set MEMBOT_CONTEXT_WINDOW={real}, or {SERVE_BIGGER}."
        else:
            fix = f"Lower MEMBOT_CONTEXT_WINDOW, or {SERVE_BIGGER}."
        return Finding(FAIL, "context window", f"A prompt of about {estimate} tokens does not fit: {exc}", fix)
    except LLMUnavailable as exc:
        return _failed("context window", exc)
    counted = got.prompt_tokens
    if counted and counted < estimate * 0.6:  # tokenizers differ from our estimate, but not by 40%
        return Finding(FAIL, "context window", f"The server counted only {counted} of about {estimate} prompt "
                                               "tokens: it cut the prompt without saying so.",
                       f"Ollama does this beyond num_ctx: set OLLAMA_CONTEXT_LENGTH={window} (or num_ctx), or "
                       f"set MEMBOT_CONTEXT_WINDOW={counted}.")
    seen = f" (the server counted {counted})" if counted else ""
    return Finding(PASS, "context window", f"A prompt of about {estimate} tokens fits{seen}.")
