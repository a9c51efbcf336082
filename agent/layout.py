"""The order of a prompt, kept stable so servers can reuse their prompt cache (llama.cpp's prefix match,
vLLM's prefix caching, OpenAI's cached input tokens): the system prompt (instructions, shared core memory,
summary) and the tool schemas first, then the history exactly as sent before, and only at the end what is new.
What changes from turn to turn (the speaker's memory block, the counts) rides inside the turn's first input,
so every later step of the turn extends the previous request instead of changing its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.context import render
from agent.db.models import Message


def is_empty_step(message: Message) -> bool:
    """An assistant step with neither text nor tool calls: replaying it breaks strict servers
    (llama-cpp-python answers HTTP 500 to `{"role": "assistant", "content": null}`)."""
    return message.role == "assistant" and not (message.content or "").strip() and not message.tool_calls


def prompt_messages(system: str, window: Sequence[Message], facts: dict[str, str] | None = None,
                    facts_on: Message | None = None) -> list[dict[str, Any]]:
    """The messages of one request: system first, the window in order, `facts` (fields) inside the JSON of
    input `facts_on`."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in window:
        if is_empty_step(message):
            continue
        extra = facts if facts and facts_on is not None and message is facts_on else None
        out.append(render(message, extra))
    return out
