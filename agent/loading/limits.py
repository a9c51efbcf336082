"""How far one file may expand when read: pages, text, decompressed bytes, parsing time and memory.

The size limit alone counts only the bytes on disk; a 30 KB .docx can hold 20 MB of XML and a small PDF can
inflate to megabytes of drawing operators. Each limit names its setting in the reason, so a person can raise it.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import FileRejected


@dataclass(frozen=True)
class ExpansionLimits:
    max_pages: int = 5_000
    max_text_chars: int = 10_000_000  # extracted text of one file
    max_page_chars: int = 1_000_000  # extracted text of one page (a PDF page, or a whole text file)
    max_expanded_bytes: int = 200_000_000  # decompressed: a .docx's zip members, a PDF's page content streams
    seconds: float = 120.0  # parsing one file, in the parser process
    memory_mb: int = 1536  # the parser process's address space


DEFAULT_LIMITS = ExpansionLimits()


def check_pages(pages: list[str], limits: ExpansionLimits) -> list[str]:
    """The pages as given, or FileRejected naming the limit they exceed."""
    if len(pages) > limits.max_pages:
        raise FileRejected(too_many_pages(len(pages), limits))
    total = 0
    for number, page in enumerate(pages, start=1):
        if len(page) > limits.max_page_chars:
            where = f"page {number}" if len(pages) > 1 else "it"
            raise FileRejected(f"{where} holds more than {limits.max_page_chars:,} characters of text (the limit; "
                               "set MEMBOT_MAX_PAGE_CHARS to change it)")
        total += len(page)
        if total > limits.max_text_chars:
            raise FileRejected(too_much_text(limits))
    return pages


def too_many_pages(pages: int, limits: ExpansionLimits) -> str:
    return f"it has {pages:,} pages (the limit is {limits.max_pages:,}; set MEMBOT_MAX_PAGES to change it)"


def too_much_text(limits: ExpansionLimits) -> str:
    return (f"it expands to more than {limits.max_text_chars:,} characters of text (the limit; set "
            "MEMBOT_MAX_TEXT_CHARS to change it)")


def too_expanded(what: str, limits: ExpansionLimits) -> str:
    return (f"{what} decompresses to more than {limits.max_expanded_bytes / 1e6:g} MB (a decompression bomb?; the "
            "limit is set by MEMBOT_MAX_EXPANDED_MB)")
