"""The context window: rendering stored messages for the model, counting tokens offline, and summarizing the
oldest messages into a recursive summary before the window overflows."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agent.db.models import Agent, Message, as_utc
from agent.llm import ChatModel, LLMUnavailable
from agent.prompts import SUMMARIZE
from agent.summary_check import digest, rejection

log = logging.getLogger(__name__)
# Words of up to 6 letters, numbers of up to 3 digits and pairs of punctuation are about one BPE token each;
# other scripts count a token per character. Checked against GPT tokenizers it errs a little high: safe.
_PIECES = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d\w]+|\w", re.UNICODE)
INPUT_TYPES = {"message": "user_message", "heartbeat": "heartbeat", "alert": "system_alert", "event": "timed_event",
               "login": "login"}


@lru_cache(maxsize=4096)  # the system prompt and tool schemas are counted on every step
def count_tokens(text: str) -> int:
    """An offline estimate of a text's tokens for chat models (no tokenizer download needed)."""
    total = 1
    for match in _PIECES.finditer(text):
        piece = match.group()
        first = piece[0]
        if first.isascii() and first.isalpha():
            total += -(-len(piece) // 6)
        elif first.isdigit():
            total += -(-len(piece) // 3)
        elif first.isascii():
            total += -(-len(piece) // 2)
        else:
            total += 1
    return total


def stamp(message: Message) -> str:
    return as_utc(message.created_at).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(message: Message, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One stored message in the OpenAI chat format; non-assistant inputs are JSON, like the original, with
    `extra` fields added to an input's JSON. What every server accepts: an assistant's `content` is a string,
    or left out when it has tool calls (never null), and `arguments` is always a string."""
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        calls = json.loads(message.tool_calls) if message.tool_calls else []
        if message.content or not calls:
            out["content"] = message.content or ""
        if calls:
            out["tool_calls"] = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": (
                c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"]))}} for c in calls]
        return out
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    body: dict[str, Any] = {"type": INPUT_TYPES.get(message.kind, message.kind)}
    if message.kind == "message":
        body.update({"from": message.author or "user", "message": message.content})
        if message.thread:
            body["thread"] = message.thread
    elif message.kind == "heartbeat":
        body["reason"] = message.content
    else:
        body["message"] = message.content
    body["time"] = stamp(message)
    body.update(extra or {})
    return {"role": "user", "content": json.dumps(body, ensure_ascii=False)}


def message_tokens(message: Message) -> int:
    return count_tokens(json.dumps(render(message), ensure_ascii=False)) + 3


@dataclass(frozen=True)
class Budget:
    """Token thresholds. The shares apply to the room left for messages under the summarize line, after the
    system prompt, tool schemas and summary: on a small window those take most of it, and thresholds on the
    whole window would summarize again on every call."""

    window: int
    pressure_at: float = 0.75  # share of the message room that triggers one memory-pressure alert
    summarize_at: float = 0.9  # share of the usable window that triggers summarizing before the next call
    keep_share: float = 0.4  # share of the message room kept after a summary
    reply_reserve: int = 512  # room left for the model's answer

    @property
    def usable(self) -> int:
        return max(256, self.window - self.reply_reserve)

    @property
    def limit(self) -> int:
        """Prompt tokens above which the oldest messages are summarized before the next call."""
        return int(self.summarize_at * self.usable)

    @property
    def summary_chars(self) -> int:
        """The longest summary kept (about a tenth of the usable window), so it cannot crowd out the messages."""
        return max(400, min(2000, self.usable * 4 // 10))

    def room(self, fixed: int) -> int:
        """Tokens for messages under the summarize line, given `fixed` tokens of system prompt and tools."""
        return max(0, self.limit - fixed)


def choose_cut(messages: Sequence[Message], keep_tokens: int, protect_from: int) -> int:
    """Index of the first message to keep: a user-role input (so a tool call never loses its result),
    the earliest one whose tail fits `keep_tokens`, and never later than `protect_from` (the current turn).
    Returns 0 when nothing can be evicted."""
    sizes = [message_tokens(m) for m in messages]
    tail = 0
    best = 0
    for i in range(len(messages) - 1, 0, -1):
        tail += sizes[i]
        if messages[i].role != "user" or i > protect_from:
            continue
        if best == 0 or tail <= keep_tokens:
            best = i  # the latest valid cut always qualifies; earlier ones only while the tail fits
        else:
            break
    return best


def summarize(model: ChatModel, agent: Agent, evicted: Sequence[Message], budget: Budget) -> str:
    """The new recursive summary. If the model cannot summarize, a plain note keeps the agent working."""
    lines = []
    for m in evicted:
        rendered = render(m)
        text = rendered.get("content") or json.dumps(rendered.get("tool_calls", ""), ensure_ascii=False)
        lines.append(f"{m.role}: {_clip(text, 600)}")
    head = f"Summary so far: {agent.summary or '(none)'}\n\nMessages:\n"
    room = budget.usable - count_tokens(SUMMARIZE) - count_tokens(head) - 16
    kept: list[str] = []
    for line in reversed(lines):  # the newest evicted messages, as many as fit the window
        room -= count_tokens(line) + 1
        if room < 0:
            break
        kept.append(line)
    prompt = [{"role": "system", "content": SUMMARIZE},
              {"role": "user", "content": head + "\n".join(reversed(kept))}]
    try:
        text = model.complete(prompt).content.strip()
    except LLMUnavailable as exc:
        log.warning("summary failed, keeping a digest instead: %s", exc)
        text = ""
    why = rejection(text, SUMMARIZE, prompt[1]["content"])
    if why is not None:
        if text:
            log.warning("the model's summary was %s; keeping a digest instead", why)
        text = digest(agent.summary, _said(evicted), len(evicted), budget.summary_chars)
    return _clip(text, budget.summary_chars)


def _said(messages: Sequence[Message]) -> list[str]:
    from agent.memory.recall import visible_text

    lines = []
    for m in messages:
        text = visible_text(m)
        if text:
            lines.append(f"{m.author or ('you' if m.role == 'assistant' else 'user')}: {text}")
    return lines


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
