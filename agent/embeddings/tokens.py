"""Offline token counting: the embedding model's own tokenizer when we have it, an estimate otherwise."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class TokenCounter(Protocol):
    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans (start, end) of each token of `text`, in order."""
        ...


class WordPieceCounter:
    """Exact counts for BERT-style models, from a `tokenizer.json` on disk (no download). The file is read on
    the first count: a search embeds a query but never counts tokens."""

    def __init__(self, tokenizer_json: Path) -> None:
        self._path = tokenizer_json
        self._tok: Any = None

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self._tok is None:  # two threads may both read it at first; either copy counts the same
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self._path))
            tok.no_truncation()
            tok.no_padding()
            self._tok = tok
        return list(self._tok.encode(text, add_special_tokens=False).offsets)


class EstimateCounter:
    """A tokenizer-free estimate for remote models: words and punctuation, long words split every 4 chars.

    It over-counts English against BPE tokenizers a little, which keeps chunks under a model's limit.
    """

    def spans(self, text: str) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for m in _WORDS.finditer(text):
            start, end = m.span()
            while end - start > 6:
                out.append((start, start + 4))
                start += 4
            out.append((start, end))
        return out
