"""Reading a model's answer tolerantly: tool calls as servers really send them.

Small and local models often do not fill `tool_calls`: they write the call into the content as JSON (Ollama's
small models, Llama 3.x), inside <tool_call>...</tool_call> tags (Hermes / Qwen templates), behind a
`functions.NAME` prefix, after `[TOOL_CALLS]` (Mistral) or `<|python_tag|>` (Llama 3.1). Some servers send
`arguments` as a JSON object instead of a string. All of that becomes ordinary tool calls here, so the loop
only ever sees one shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.S)
_PREFIXED = re.compile(r"functions\.(\w+)\s*[:(]?\s*(?=\{)")
_MARKERS = ("[TOOL_CALLS]", "<|python_tag|>", "<|tool_call|>", "<tool_call>", "</tool_call>", "```json", "```")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class FoundCall:
    name: str
    arguments: str  # always a JSON string


def arguments_text(value: Any) -> str:
    """`arguments` as the JSON string the OpenAI schema requires, whatever the server sent."""
    if value is None or value == "":
        return "{}"
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            return value  # malformed: the tool call fails with a message the model can act on
        if isinstance(inner, str) and inner.strip().startswith("{"):
            return arguments_text(inner)  # JSON encoded twice
        return value
    return json.dumps(value, ensure_ascii=False)


def tool_name(name: str) -> str:
    """A tool name without the `functions.` prefix some models copy from OpenAI's own prompt format."""
    name = name.strip()
    return name[len("functions."):] if name.startswith("functions.") else name


def calls_in_content(content: str, tools: Collection[str]) -> tuple[str, list[FoundCall]]:
    """Tool calls written into the content, and the content without them (the model's thought).
    Only calls of known tools count, so a JSON example in a thought is left alone."""
    if not content or "{" not in content:
        return content, []
    spans: list[tuple[int, int]] = []
    calls: list[FoundCall] = []
    for start, end, call in _candidates(content, tools):
        if any(s <= start < e for s, e in spans):
            continue
        spans.append((start, end))
        calls.append(call)
    if not calls:
        return content, []
    rest, last = [], 0
    for start, end in sorted(spans):
        rest.append(content[last:start])
        last = end
    rest.append(content[last:])
    thought = "".join(rest)
    for marker in _MARKERS:
        thought = thought.replace(marker, "")
    return " ".join(thought.split()), calls


def _candidates(content: str, tools: Collection[str]) -> Iterator[tuple[int, int, FoundCall]]:
    for match in _TAGGED.finditer(content):
        for call in _as_calls(_decode(match.group(1)), tools):
            yield match.start(), match.end(), call
    for match in _PREFIXED.finditer(content):
        name = match.group(1)
        value, end = _decode_at(content, match.end())
        if name in tools and isinstance(value, dict):
            yield match.start(), end, FoundCall(name, arguments_text(value))
    for start in (i for i, ch in enumerate(content) if ch in "{["):
        value, end = _decode_at(content, start)
        if value is None:
            continue
        for call in _as_calls(value, tools):
            yield start, end, call


def _as_calls(value: Any, tools: Collection[str]) -> list[FoundCall]:
    """{"name", "arguments"|"parameters"}, OpenAI's {"function": {...}}, or a list of those."""
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("function"), dict):
            item = item["function"]
        name = item.get("name")
        if not isinstance(name, str) or tool_name(name) not in tools:
            continue
        args = item.get("arguments", item.get("parameters", {}))
        calls.append(FoundCall(tool_name(name), arguments_text(args)))
    return calls


def _decode(text: str) -> Any:
    value, _ = _decode_at(text, 0)
    return value


def _decode_at(text: str, start: int) -> tuple[Any, int]:
    while start < len(text) and text[start].isspace():
        start += 1
    try:
        return _DECODER.raw_decode(text, start)
    except ValueError:
        return None, start


def partial_string(arguments: str, key: str = "message") -> str | None:
    """The value of `key` in a JSON object that is still arriving (a streamed send_message), as far as it
    has come; None before the value starts. Escapes are decoded; a cut escape is left out."""
    match = re.search(r'"' + re.escape(key) + r'"\s*:\s*"', arguments)
    if match is None:
        return None
    out: list[str] = []
    i = match.end()
    while i < len(arguments):
        ch = arguments[i]
        if ch == '"':
            break
        if ch == "\\":
            piece = arguments[i:i + 6] if arguments[i + 1:i + 2] == "u" else arguments[i:i + 2]
            if len(piece) < 2 or (piece[1] == "u" and len(piece) < 6):
                break
            try:
                out.append(json.loads(f'"{piece}"'))
            except ValueError:
                break
            i += len(piece)
            continue
        out.append(ch)
        i += 1
    return "".join(out)
