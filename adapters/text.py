"""Splitting long replies at a platform's message limit without breaking code blocks."""

from __future__ import annotations

FENCE = "```"


def split_message(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at paragraph, line or word boundaries where possible.

    A code block cut in two is closed at the end of one piece and reopened (same language) in the next,
    so every piece renders on its own.
    """
    if limit < 20:
        raise ValueError("limit too small")
    pieces: list[str] = []
    rest = text.strip()
    fence_open = ""  # the opening fence line of a code block carried into the next piece
    while rest:
        prefix = f"{fence_open}\n" if fence_open else ""
        room = limit - len(prefix) - len(FENCE) - 1  # leave room to close a fence
        if len(prefix) + len(rest) <= limit:
            pieces.append(prefix + rest)
            break
        cut = _cut_point(rest, room)
        piece, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n")
        body = prefix + piece
        fence_open = _open_fence(body)
        if fence_open:
            body += "\n" + FENCE
        pieces.append(body)
    return [p for p in pieces if p.strip()]


def _cut_point(text: str, room: int) -> int:
    window = text[:room]
    for sep in ("\n\n", "\n", " "):
        at = window.rfind(sep)
        if at > room // 2:
            return at + len(sep)
    return room


def _open_fence(text: str) -> str:
    """The fence line that opens a code block still open at the end of `text`, or ''."""
    opening = ""
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            opening = "" if opening else stripped
    return opening
