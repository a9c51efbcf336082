"""How real OpenAI-compatible servers and small models answer, as modes of the fake OpenAI server.

    fake.mode = "content-tags"      # every tool call arrives as <tool_call>{...}</tool_call> in the content
    fake.window = 2048              # with an overflow mode: prompts over 2,048 tokens get that server's error

Each mode reproduces one behaviour from a public bug report or the server's source (the texts are theirs).
Requests are always checked as llama-cpp-python checks them: an assistant message without tool calls needs
string content, and `arguments` must be a string (it answers HTTP 500 otherwise).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from tests.fakes.openai_server import ErrorReply, Reply, ToolCall, error

JSON = dict[str, Any]

MODES: dict[str, str] = {
    "openai": "well-behaved: native tool_calls, JSON bodies",
    "arguments-object": "tool_calls[].function.arguments sent as a JSON object (a llama.cpp release did)",
    "content-json": 'tool calls written into content as {"name": ..., "arguments": {...}} (small Ollama models)',
    "content-tags": "tool calls inside <tool_call>...</tool_call> in content (Hermes/Qwen templates)",
    "content-functions": "tool calls as functions.NAME:{...} in content",
    "plain-text": "the model ignores the tools and answers in plain text",
    "empty": "empty content and no tool calls",
    "sse-unasked": "answers with an event stream although the request did not ask for one",
    "stream-quirks": "streams whole tool calls in one chunk, arguments as objects, no index, keep-alive comments",
    "length": "stops at max_tokens: the answer is cut and finish_reason is 'length'",
    "ollama-no-tools": "Ollama with a model without tool support: HTTP 400 'does not support tools'",
    "llama-server-no-jinja": "llama-server started without --jinja: HTTP 500 'tools param requires --jinja flag'",
    "vllm-no-tool-parser": "vLLM without --enable-auto-tool-choice: HTTP 400",
    "validation-error": "a pydantic validation error for a field the server does not accept: HTTP 422",
    "ollama-truncates": "over `window`: no error, the prompt is cut silently (usage shows the window)",
    "overflow-openai": "over `window`: OpenAI's context_length_exceeded",
    "overflow-vllm": "over `window`: vLLM V1's 'decoder prompt ... longer than the maximum model length'",
    "overflow-llama-server": "over `window`: llama-server's exceed_context_size_error as HTTP 500 (older builds)",
    "overflow-lmstudio": "over `window`: LM Studio's plain-string error body",
    "overflow-llama-cpp-python": "over `window`: llama-cpp-python's 'Requested tokens exceed context window'",
}


def request_error(body: JSON) -> ErrorReply | None:
    """llama-cpp-python's request model: what membot must never send."""
    for message in body.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls") or []
        if not calls and not isinstance(message.get("content"), str):
            return error(500, "1 validation error for ChatCompletionRequestAssistantMessage: content: Input should "
                              "be a valid string", type="internal_server_error")
        for call in calls:
            if not isinstance((call.get("function") or {}).get("arguments"), str):
                return error(500, "validation error: function.arguments: Input should be a valid string",
                             type="internal_server_error")
    return None


def prompt_tokens(body: JSON) -> int:
    text = json.dumps(body.get("messages")) + json.dumps(body.get("tools"))
    return max(1, len(text) // 4)


def mode_error(mode: str, body: JSON, window: int | None) -> ErrorReply | None:
    """The error a server in `mode` answers to this request, if any."""
    tools = bool(body.get("tools"))
    if mode == "ollama-no-tools" and tools:
        return error(400, "registry.ollama.ai/library/gemma3:1b does not support tools", type="api_error")
    if mode == "llama-server-no-jinja" and tools:
        return error(500, "tools param requires --jinja flag", type="server_error")
    if mode == "vllm-no-tool-parser" and tools:
        return error(400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
                     type="BadRequestError")
    if mode == "validation-error":
        return ErrorReply(422, "", "", body=json.dumps({"detail": [{"type": "extra_forbidden", "loc": [
            "body", "max_tokens"], "msg": "Extra inputs are not permitted"}]}))
    if not mode.startswith("overflow-") or window is None:
        return None
    asked = prompt_tokens(body)
    if asked <= window:
        return None
    return _overflow(mode, asked, window, int(body.get("max_tokens") or 0))


def _overflow(mode: str, asked: int, window: int, completion: int) -> ErrorReply:
    if mode == "overflow-openai":
        return error(400, f"This model's maximum context length is {window} tokens. However, your messages resulted "
                          f"in {asked} tokens. Please reduce the length of the messages.",
                     code="context_length_exceeded")
    if mode == "overflow-vllm":
        return error(400, f"The decoder prompt (length {asked}) is longer than the maximum model length of {window}. "
                          "Make sure that `max_model_len` is no smaller than the number of text tokens.",
                     type="BadRequestError")
    if mode == "overflow-llama-server":
        return ErrorReply(500, "", "", body=json.dumps({"error": {
            "code": 500, "message": "the request exceeds the available context size. try increasing the context "
                                    "size or enable context shift", "type": "exceed_context_size_error",
            "n_prompt_tokens": asked, "n_ctx": window}}))
    if mode == "overflow-lmstudio":
        return ErrorReply(400, "", "", body=json.dumps({"error": (
            f"Trying to keep the first {asked} tokens when context the overflows. However, the model is loaded with "
            f"context length of only {window} tokens, which is not enough. Try to load the model with a larger "
            "context length, or provide a shorter input")}))
    return error(400, f"Requested tokens ({asked + completion}) exceed context window of {window}")


def reshape(mode: str, answer: Reply) -> Reply:
    """The scripted answer as a model in `mode` would write it."""
    if mode in ("content-json", "content-tags", "content-functions") and answer.tool_calls:
        written = [_written(mode, call) for call in answer.tool_calls]
        return Reply(content="\n".join(([answer.content] if answer.content else []) + written))
    if mode == "plain-text" and answer.tool_calls:
        words = [json.loads(c.arguments).get("message", "") for c in answer.tool_calls if c.name == "send_message"]
        return Reply(content=" ".join(w for w in words if w) or answer.content or "I would rather not use tools.")
    if mode == "empty":
        return Reply(content="")
    if mode == "length":
        return _cut(answer)
    return answer


def _written(mode: str, call: ToolCall) -> str:
    args = json.loads(call.arguments)
    if mode == "content-functions":
        return f"functions.{call.name}:{json.dumps(args)}"
    text = json.dumps({"name": call.name, "arguments": args})
    return f"<tool_call>\n{text}\n</tool_call>" if mode == "content-tags" else f"```json\n{text}\n```"


def _cut(answer: Reply, keep: int = 60) -> Reply:
    content = answer.content[:keep] if answer.content else answer.content
    calls = tuple(replace(c, arguments=c.arguments[:keep]) if len(c.arguments) > keep else c
                  for c in answer.tool_calls)
    return Reply(content=content, tool_calls=calls, finish_reason="length")


def wire_json(mode: str, window: int | None, completion: JSON) -> JSON:
    """The completion on the wire, for modes that change its JSON types or its usage."""
    if mode in ("arguments-object", "stream-quirks"):
        for call in completion["choices"][0]["message"].get("tool_calls") or []:
            try:
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
            except ValueError:
                pass
    if mode == "ollama-truncates" and window is not None:  # no error: Ollama silently keeps the prompt's end
        completion["usage"]["prompt_tokens"] = min(completion["usage"]["prompt_tokens"], window)
    return completion


def quirky_stream(completion: JSON) -> list[bytes]:
    """SSE as some servers send it: a keep-alive comment, whole calls in one chunk without `index`, arguments
    as objects, the finish reason in its own chunk, then usage with no choices."""
    base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    message = completion["choices"][0]["message"]
    chunks: list[JSON] = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": None}}])]
    if message.get("content"):
        chunks.append(dict(base, choices=[{"index": 0, "delta": {"content": message["content"]}}]))
    for call in message.get("tool_calls") or []:
        piece = {"id": call["id"], "type": "function", "function": call["function"]}
        chunks.append(dict(base, choices=[{"index": 0, "delta": {"tool_calls": [piece]}}]))
    chunks.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason":
                                       completion["choices"][0]["finish_reason"]}]))
    chunks.append(dict(base, choices=[], usage=completion["usage"]))
    events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    return [b": keep-alive\n\n", *events, b"data: [DONE]\n\n"]
