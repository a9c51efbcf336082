"""Keyword ranking (BM25) that keeps exact identifiers whole: UUIDs, error codes, snake_case names."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

K1 = 1.2
B = 0.75
# A compound such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427 or ERR_DISK_FULL is one token and also its parts.
_COMPOUND = re.compile(r"[^\W_]+(?:[-_./:][^\W_]+)*", re.UNICODE)
_PARTS = re.compile(r"[^\W_]+", re.UNICODE)
STOP_WORDS = frozenset(
    "a an and are as at be but by can could did do does for from had has have how i if in into is it its "
    "me my of on or our so than that the their them then there these they this to was we were what when "
    "where which who whom why will with would you your about tell more".split()
)


def terms(text: str) -> list[str]:
    out: list[str] = []
    for match in _COMPOUND.finditer(unicodedata.normalize("NFKC", text).lower()):  # "ﬀ" in old passages too
        word = match.group()
        parts = _PARTS.findall(word)
        if len(parts) > 1:
            out.append(word)
        out.extend(p for p in parts if p not in STOP_WORDS)
    return out


@dataclass
class KeywordIndex:
    """Postings per term: which rows contain it and their BM25 term-frequency weight (without IDF).

    IDF is applied at query time over all indexes searched together, so scores from several sources
    are on one scale.
    """

    postings: dict[str, tuple[np.ndarray, np.ndarray]]
    size: int

    @classmethod
    def build(cls, texts: Sequence[str]) -> KeywordIndex:
        counts = [Counter(terms(t)) for t in texts]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float32)
        avg = float(lengths.mean()) if len(lengths) and lengths.mean() > 0 else 1.0
        rows: dict[str, list[int]] = {}
        weights: dict[str, list[float]] = {}
        for row, counter in enumerate(counts):
            norm = K1 * (1 - B + B * lengths[row] / avg)
            for term, tf in counter.items():
                rows.setdefault(term, []).append(row)
                weights.setdefault(term, []).append(tf * (K1 + 1) / (tf + norm))
        postings = {t: (np.array(rows[t], dtype=np.int64), np.array(weights[t], dtype=np.float32)) for t in rows}
        return cls(postings, len(texts))

    def doc_freq(self, term: str) -> int:
        hit = self.postings.get(term)
        return 0 if hit is None else len(hit[0])


def bm25_scores(indexes: Sequence[KeywordIndex], query: str) -> list[np.ndarray]:
    """One score array per index (row order), sharing IDF across all of them."""
    q_terms = list(dict.fromkeys(terms(query)))
    total = sum(ix.size for ix in indexes)
    out = [np.zeros(ix.size, dtype=np.float32) for ix in indexes]
    for term in q_terms:
        df = sum(ix.doc_freq(term) for ix in indexes)
        if df == 0:
            continue
        idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
        for ix, scores in zip(indexes, out):
            hit = ix.postings.get(term)
            if hit is not None:
                scores[hit[0]] += idf * hit[1]
    return out
