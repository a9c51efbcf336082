"""Reading files into pages of text. A PDF gives one page per PDF page; other types give one page."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable
from pathlib import Path

from agent.errors import FileRejected

Reader = Callable[[bytes], list[str]]


def read_pdf(data: bytes) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")  # owner-password-only PDFs open with an empty user password
            except (NotImplementedError, PdfReadError) as exc:
                raise FileRejected(f"encrypted PDF that cannot be opened ({exc})") from exc
            if not ok:
                raise FileRejected("encrypted PDF: it needs a password; upload a copy without one")
        return [page.extract_text() or "" for page in reader.pages]
    except FileRejected:
        raise
    except FileNotDecryptedError as exc:
        raise FileRejected("encrypted PDF: it needs a password; upload a copy without one") from exc
    except Exception as exc:  # pypdf raises many types on damaged files
        raise FileRejected(f"corrupt or unreadable PDF ({exc.__class__.__name__}: {exc})") from exc


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def read_text(data: bytes) -> list[str]:
    """UTF-8, or UTF-16/32 with a byte-order mark (as Windows editors save "Unicode"), else Windows-1252.

    Text without a mark is never guessed to be UTF-16: nearly any even-length bytes decode as UTF-16, so a
    Latin-1 file would turn into CJK gibberish.
    """
    for bom, encoding in _BOMS:  # UTF-32 LE first: its mark starts with the UTF-16 LE one
        if data.startswith(bom):
            try:
                return [data.decode(encoding)]
            except UnicodeDecodeError as exc:
                raise FileRejected(f"not valid {encoding.upper()} text ({exc.reason})") from exc
    if b"\x00" in data[:8192]:
        raise FileRejected("binary data, not text")
    try:
        return [data.decode("utf-8-sig")]
    except UnicodeDecodeError:
        pass
    try:
        return [data.decode("cp1252")]
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
        return [data.decode("latin-1")]


def read_docx(data: bytes) -> list[str]:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise FileRejected(f"corrupt or unreadable .docx ({exc.__class__.__name__})") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return ["\n".join(parts)]


def read_html(data: bytes) -> list[str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    text = soup.get_text("\n")
    return [re.sub(r"\n\s*\n+", "\n\n", text)]


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


def reader_for(name: str) -> Reader:
    suffix = Path(name).suffix.lower()
    if suffix not in READERS:
        known = ", ".join(sorted(READERS))
        raise FileRejected(f"file type {suffix or '(none)'!r} is not supported (supported: {known})")
    return READERS[suffix]
