"""Reading files into pages of text. A PDF gives one page per PDF page; other types give one page.

Every reader takes the expansion limits and stops as soon as one is passed, so a bomb fails fast with a reason;
the limits on time and memory are the parser process's (agent/loading/parser.py).
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from pathlib import Path
from typing import IO, Any, Protocol

from agent.errors import FileRejected
from agent.loading.limits import (
    DEFAULT_LIMITS,
    ExpansionLimits,
    too_expanded,
    too_many_pages,
    too_much_text,
)


class Reader(Protocol):
    def __call__(self, data: bytes, limits: ExpansionLimits = DEFAULT_LIMITS) -> list[str]: ...


NEEDS_PASSWORD = "encrypted PDF: it needs a password; upload a copy without one"


def read_pdf(data: bytes, limits: ExpansionLimits = DEFAULT_LIMITS) -> list[str]:
    from pypdf.errors import LimitReachedError

    reader = _open_pdf(data)
    try:
        count = len(reader.pages)
        if count > limits.max_pages:
            raise FileRejected(too_many_pages(count, limits))
        return _pdf_pages(reader, limits)
    except (FileRejected, MemoryError):  # the parser process reports running out of memory as such
        raise
    except LimitReachedError as exc:  # pypdf's own cap on one stream's output
        raise FileRejected(too_expanded("a stream in it", limits)) from exc
    except Exception as exc:  # pypdf raises many types on damaged files
        raise FileRejected(f"corrupt or unreadable PDF ({exc.__class__.__name__}: {exc})") from exc


def _open_pdf(data: bytes) -> Any:
    """The reader, decrypted when an empty user password opens it (owner-locked "protected" PDFs, which any
    viewer opens); a PDF that needs a password and a damaged one get different reasons."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileRejected(NEEDS_PASSWORD)
        return reader
    except (FileRejected, MemoryError):
        raise
    except FileNotDecryptedError as exc:
        raise FileRejected(NEEDS_PASSWORD) from exc
    except (DependencyError, NotImplementedError) as exc:  # an encryption pypdf (with cryptography) cannot undo
        raise FileRejected(f"encrypted PDF that cannot be opened ({exc})") from exc
    except Exception as exc:
        raise FileRejected(f"corrupt or unreadable PDF ({exc.__class__.__name__}: {exc})") from exc


def _pdf_pages(reader: Any, limits: ExpansionLimits) -> list[str]:
    pages: list[str] = []
    expanded = total = 0
    for number, page in enumerate(reader.pages, start=1):
        contents = page.get_contents()
        expanded += len(contents.get_data()) if contents is not None else 0
        if expanded > limits.max_expanded_bytes:  # checked before the slow part, extracting the text
            raise FileRejected(too_expanded("the content of its pages", limits))
        text = page.extract_text() or ""
        if len(text) > limits.max_page_chars:
            raise FileRejected(f"page {number} holds more than {limits.max_page_chars:,} characters of text (the "
                               "limit; set MEMBOT_MAX_PAGE_CHARS to change it)")
        total += len(text)
        if total > limits.max_text_chars:
            raise FileRejected(too_much_text(limits))
        pages.append(text)
    return pages


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
MIN_PRINTABLE = 0.97  # share of characters that must be printable or whitespace
MAX_FALLBACK_NON_ASCII = 0.3  # in text that is not UTF-8: real Windows-1252 text is mostly ASCII
BINARY = "binary data, not text"


def read_text(data: bytes, limits: ExpansionLimits = DEFAULT_LIMITS) -> list[str]:
    """UTF-8, or UTF-16/32 with a byte-order mark (as Windows editors save "Unicode"), else Windows-1252; and
    it must read as text: mostly printable characters, not only free of NUL bytes.

    Text without a mark is never guessed to be UTF-16: nearly any even-length bytes decode as UTF-16, so a
    Latin-1 file would turn into CJK gibberish.
    """
    text, fallback = _decode(data)
    _check_text(text, fallback)
    if len(text) > limits.max_text_chars:
        raise FileRejected(too_much_text(limits))
    return [text]


def _decode(data: bytes) -> tuple[str, bool]:
    for bom, encoding in _BOMS:  # UTF-32 LE first: its mark starts with the UTF-16 LE one
        if data.startswith(bom):
            try:
                return data.decode(encoding), False
            except UnicodeDecodeError as exc:
                raise FileRejected(f"not valid {encoding.upper()} text ({exc.reason})") from exc
    if b"\x00" in data[:8192]:
        raise FileRejected(BINARY)
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), True
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
        return data.decode("latin-1"), True


def _check_text(text: str, fallback: bool) -> None:
    sample = text[:200_000]  # enough to judge; a long file is not scanned twice in full
    if not sample:
        return
    control = sum(1 for ch in sample if not ch.isprintable() and ch not in "\n\r\t\f\v")
    if control > len(sample) * (1 - MIN_PRINTABLE):
        raise FileRejected(f"{BINARY} ({control * 100 // len(sample)}% of its characters are control characters)")
    if fallback and sum(1 for ch in sample if ord(ch) > 127) > len(sample) * MAX_FALLBACK_NON_ASCII:
        raise FileRejected(f"{BINARY} (it is not UTF-8, and most of it does not read as Windows-1252 text either)")


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def read_docx(data: bytes, limits: ExpansionLimits = DEFAULT_LIMITS) -> list[str]:
    """The text of word/document.xml, streamed: paragraphs in order, a table row as its cells joined by " | ".

    The XML is read as a stream (never a whole tree) and its decompressed size counted while reading, since
    a few KB of zip can hold hundreds of MB of empty paragraphs.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        member = archive.getinfo("word/document.xml")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise FileRejected(f"corrupt or unreadable .docx ({exc.__class__.__name__})") from exc
    if sum(i.file_size for i in archive.infolist()) > limits.max_expanded_bytes:
        raise FileRejected(too_expanded("it", limits))
    try:
        with archive.open(member) as raw:
            return ["\n".join(_docx_blocks(_Capped(raw, limits), limits))]
    except (FileRejected, MemoryError):
        raise
    except Exception as exc:  # a damaged deflate stream, bad XML, a CRC mismatch
        raise FileRejected(f"corrupt or unreadable .docx ({exc.__class__.__name__})") from exc


def _docx_blocks(stream: Any, limits: ExpansionLimits) -> list[str]:
    from lxml import etree

    out: list[str] = []
    para: list[str] = []
    cell: list[str] = []
    row: list[str] = []
    in_cell = total = 0
    for event, elem in etree.iterparse(stream, events=("start", "end"), resolve_entities=False, no_network=True):
        tag = elem.tag
        if event == "start":
            in_cell += tag == _W + "tc"
            continue
        if tag == _W + "t" and elem.text:
            para.append(elem.text)
            total += len(elem.text)
            if total > limits.max_text_chars:
                raise FileRejected(too_much_text(limits))
        elif tag in (_W + "tab", _W + "br", _W + "cr"):
            para.append("\t" if tag == _W + "tab" else "\n")
        elif tag == _W + "p":
            text = "".join(para).strip()
            para = []
            if text:
                (cell if in_cell else out).append(text)
        elif tag == _W + "tc":
            in_cell -= 1
            row.append("\n".join(cell))
            cell = []
        elif tag == _W + "tr":
            if any(row):
                out.append(" | ".join(row))
            row = []
        if tag in (_W + "p", _W + "tbl", _W + "tr"):
            elem.clear()  # keep memory flat: nothing of a finished block is kept in the tree
            while elem.getprevious() is not None:
                del elem.getparent()[0]
    return out


class _Capped(io.RawIOBase):
    """A read-only stream that fails once more than the limit was read from it (zip sizes can lie)."""

    def __init__(self, raw: IO[bytes], limits: ExpansionLimits) -> None:
        self.raw, self.limits, self.count = raw, limits, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size if size and size > 0 else 1 << 16)
        self.count += len(chunk)
        if self.count > self.limits.max_expanded_bytes:
            raise FileRejected(too_expanded("it", self.limits))
        return chunk


def read_html(data: bytes, limits: ExpansionLimits = DEFAULT_LIMITS) -> list[str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    text = re.sub(r"\n\s*\n+", "\n\n", soup.get_text("\n"))
    if len(text) > limits.max_text_chars:
        raise FileRejected(too_much_text(limits))
    return [text]


READERS: dict[str, Reader] = {
    ".pdf": read_pdf,
    ".txt": read_text,
    ".md": read_text,
    ".markdown": read_text,
    ".rst": read_text,
    ".csv": read_text,
    ".json": read_text,
    ".docx": read_docx,
    ".html": read_html,
    ".htm": read_html,
}
ISOLATED = frozenset({".pdf", ".docx", ".html", ".htm"})  # parsers whose time and memory only a process bounds


def reader_for(name: str) -> Reader:
    suffix = Path(name).suffix.lower()
    if suffix not in READERS:
        known = ", ".join(sorted(READERS))
        raise FileRejected(f"file type {suffix or '(none)'!r} is not supported (supported: {known})")
    return READERS[suffix]
