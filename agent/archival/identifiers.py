"""Identifier-looking terms (UUIDs, error codes, snake_case names, version strings) that must match exactly.

A Milvus server without full-text search (2.3, 2.4) still finds them: each passage stores its identifiers in an
array field, and a query's identifiers are matched with `array_contains_any`, an exact scalar filter.
"""

from __future__ import annotations

import re

from agent.archival.keyword import _COMPOUND, _PARTS

MAX_PER_PASSAGE = 64  # the array field's capacity; a passage with more keeps its first (distinct) ones
MAX_LENGTH = 128  # longer "identifiers" are noise (base64 blobs, minified code)
_DIGIT = re.compile(r"\d")


def identifiers(text: str, limit: int = MAX_PER_PASSAGE) -> list[str]:
    """The distinct identifier-looking terms of `text`, lower-cased, in order of first appearance.

    A term counts when it is a compound of several parts (`ERR_DISK_FULL`, `1b4e28ba-2fa1-...`, `v2.3.5`) or a
    single word mixing letters and digits (`E1234`, `0x7f`), never a plain word or a bare number.
    """
    found: dict[str, None] = {}
    for match in _COMPOUND.finditer(text.lower()):
        word = match.group()
        if len(word) > MAX_LENGTH:
            continue
        compound = len(_PARTS.findall(word)) > 1
        mixed = bool(_DIGIT.search(word)) and not word.isdigit()
        if compound or mixed:
            found.setdefault(word, None)
            if len(found) >= limit:
                break
    return list(found)
