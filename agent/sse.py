"""Server-sent events from /chat/completions, assembled into one answer.

Used for `stream: true` requests and for servers that stream although nobody asked. Chunks are joined the way
servers really send them: tool-call pieces keyed by `index` (some servers omit it, or send a whole call in one
chunk), a final chunk with only `usage`, keep-alive comments, and an error object inside the stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.answers import partial_string

DraftSink = Callable[[str], None]


class StreamError(Exception):
    """The server reported an error inside the stream; `body` is its error object."""

    def __init__(self, body: Any) -> None:
        super().__init__(str(body))
        self.body = body


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class Assembled:
    content: str = ""
    calls: list[_Call] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None

    def as_message(self) -> dict[str, Any]:
        """The same shape as a non-streamed `choices[0].message`."""
        return {"content": self.content, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in self.calls]}


def events(lines: Iterable[str]) -> Iterable[Any]:
    """The JSON payload of each `data:` event, until `[DONE]`."""
    for line in lines:
        line = line.strip()
        if not line.startswith("data:"):
            continue  # comments (": ping"), event names, blank separators
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        if data:
            yield json.loads(data)


def assemble(lines: Iterable[str], on_draft: DraftSink | None = None) -> Assembled:
    """Join the chunks; `on_draft` gets the growing text of a send_message call as it arrives."""
    out = Assembled()
    shown = ""
    for chunk in events(lines):
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            raise StreamError(chunk["error"])
        if chunk.get("usage"):
            out.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            out.content += delta.get("content") or ""
            for piece in delta.get("tool_calls") or []:
                _merge(out.calls, piece)
            if choice.get("finish_reason"):
                out.finish_reason = choice["finish_reason"]
        if on_draft is not None:
            draft = _draft(out.calls)
            if draft and draft != shown:
                shown = draft
                on_draft(draft)
    return out


def _merge(calls: list[_Call], piece: dict[str, Any]) -> None:
    index = piece.get("index")
    if not isinstance(index, int):  # no index: a new id starts a new call, otherwise it continues the last
        known = [i for i, c in enumerate(calls) if piece.get("id") and c.id == piece.get("id")]
        index = known[0] if known else (len(calls) if piece.get("id") or not calls else len(calls) - 1)
    while len(calls) <= index:
        calls.append(_Call())
    call = calls[index]
    function = piece.get("function") or {}
    call.id = call.id or str(piece.get("id") or "")
    call.name += function.get("name") or ""
    arguments = function.get("arguments")
    if isinstance(arguments, (dict, list)):  # a whole call in one chunk, arguments as an object
        call.arguments = json.dumps(arguments, ensure_ascii=False)
    elif arguments:
        call.arguments += arguments


def _draft(calls: list[_Call]) -> str:
    for call in calls:
        if call.name.removeprefix("functions.") == "send_message":
            return partial_string(call.arguments) or ""
    return ""
