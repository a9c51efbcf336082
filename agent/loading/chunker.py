"""Splitting page text into overlapping passages sized in the embedding model's own tokens."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from agent.embeddings.tokens import TokenCounter

_SENTENCE_END = frozenset({".", "!", "?"})


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int
    index: int  # position within the file


def chunk_pages(pages: list[str], counter: TokenCounter, size: int, overlap: int, numbered: bool) -> list[Chunk]:
    """Chunks of at most `size` tokens with `overlap` tokens repeated; breaks at a sentence end when near."""
    chunks: list[Chunk] = []
    for page_no, raw in enumerate(pages, start=1):
        text = _tidy(raw)
        for piece in _windows(text, counter, size, overlap):
            chunks.append(Chunk(piece, page_no if numbered else 0, len(chunks)))
    return chunks


def _windows(text: str, counter: TokenCounter, size: int, overlap: int) -> list[str]:
    spans = counter.spans(text)
    out: list[str] = []
    start = 0
    while start < len(spans):
        end = min(start + size, len(spans))
        if end < len(spans):
            end = _sentence_break(text, spans, start, end, size)
        piece = text[spans[start][0] : spans[end - 1][1]].strip()
        if piece:
            out.append(piece)
        if end >= len(spans):
            break
        start = max(end - overlap, start + 1)
    return out


def _sentence_break(text: str, spans: list[tuple[int, int]], start: int, end: int, size: int) -> int:
    """The last token in the final third of the window that ends a sentence or a line, else `end`."""
    floor = start + (size * 2) // 3
    for i in range(end, floor, -1):
        tok_start, tok_end = spans[i - 1]
        if text[tok_start:tok_end] in _SENTENCE_END or text[tok_end : tok_end + 1] == "\n":
            return i
    return end


def _tidy(text: str) -> str:
    # NFKC first: PDF ligatures (the one-character "ﬀ" in "Buﬀer") and full-width letters become the letters
    # people type, for the keyword index and the embedding model alike.
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\x00", "")
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)  # words hyphenated across lines
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
