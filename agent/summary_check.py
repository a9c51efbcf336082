"""Telling a summary from something that is not one, and the mechanical digest that replaces it.

Weak models answer a summarizing request with its own instructions echoed back, with nothing, or with more text
than they were given; keeping that would replace the agent's memory of the conversation with noise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORDS = re.compile(r"[a-z0-9']+")


def rejection(summary: str, instructions: str, source: str) -> str | None:
    """Why `summary` is not a summary of `source` (None if it is one)."""
    text = summary.strip()
    if not text:
        return "empty"
    if _overlap(text, instructions) >= 0.5:
        return "an echo of the summarizer's instructions"
    if len(text) > max(200, len(source)):
        return "longer than the messages it summarizes"
    return None


def _overlap(text: str, instructions: str) -> float:
    """Share of the text's word trigrams that come from the instructions."""
    def grams(words: list[str]) -> set[tuple[str, ...]]:
        return {tuple(words[i:i + 3]) for i in range(max(0, len(words) - 2))}

    mine = grams(_WORDS.findall(text.lower()))
    theirs = grams(_WORDS.findall(instructions.lower()))
    return len(mine & theirs) / len(mine) if mine else 0.0


def digest(previous: str, lines: Sequence[str], evicted: int, limit: int) -> str:
    """A summary made without the model: the earlier summary, then the first words of what people said and
    were told (`lines`; newest kept when space runs out), so names and topics stay in view."""
    head = previous.strip()
    room = limit - len(head) - 40
    picked: list[str] = []
    for line in reversed(lines):
        short = " ".join(line.split())
        short = short if len(short) <= 100 else short[:97] + "..."
        if room - len(short) - 2 < 0:
            break
        room -= len(short) + 2
        picked.append(short)
    note = f"({evicted} earlier messages left the context; conversation_search finds them.)"
    if picked:
        note += " Digest: " + "; ".join(reversed(picked))
    return f"{head}\n{note}".strip()
