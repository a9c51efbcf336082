"""Hostile and broken files, built here small on disk: decompression bombs, slow PDFs, AES-encrypted PDFs,
random bytes named .txt. Loaded together with good files, each gets its own reason, the rest load, and time and
memory stay within the limits (measured with the processes' own accounting, with generous bounds)."""

from __future__ import annotations

import io
import os
import resource
import time
import zipfile
from pathlib import Path

import pytest

from agent.errors import FileRejected
from agent.loading.inputs import InputFile
from agent.loading.limits import ExpansionLimits
from agent.loading.parser import InProcessParser, ParserPool
from bot.container import Container
from tests.conftest import PAPER, make_settings
from tests.test_bad_files import assert_only, good_files

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
LIMITS = {"MEMBOT_MAX_EXPANDED_MB": "12", "MEMBOT_MAX_TEXT_CHARS": "200000", "MEMBOT_MAX_PAGES": "40",
          "MEMBOT_PARSE_SECONDS": "3", "MEMBOT_PARSE_MEMORY_MB": "300", "MEMBOT_MAX_FILE_MB": "60"}


def docx(body_xml: bytes) -> bytes:
    """A minimal .docx (what Word needs to open one) around a document body."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/'
                   'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        z.writestr("word/document.xml", b'<?xml version="1.0"?><w:document xmlns:w="' + W_NS.encode()
                   + b'"><w:body>' + body_xml + b"</w:body></w:document>")
    return out.getvalue()


def paragraph(text: str) -> bytes:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>".encode()


def empty_paragraph_bomb() -> bytes:
    return docx(b"<w:p/>" * 3_000_000)  # 18 MB of XML in ~20 KB


def pdf_with_contents(streams: list[bytes]) -> bytes:
    """A PDF with one page per content stream, each stream Flate-compressed, and Helvetica as font /F1."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                                                NameObject("/Subtype"): NameObject("/Type1"),
                                                NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for data in streams:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        stream = DecodedStreamObject()
        stream.set_data(data)
        page[NameObject("/Contents")] = writer._add_object(stream.flate_encode())
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def inflating_pdf() -> bytes:
    return pdf_with_contents([b" " * 14_000_000])  # 14 MB of whitespace operators in ~14 KB


def slow_pdf() -> bytes:
    """Text operators that pypdf needs over 15 s to extract, under the expanded-bytes limit."""
    return pdf_with_contents([b"BT /F1 12 Tf 10 10 Td (a) Tj ET\n" * 150_000])  # 5 MB inflated, ~12 KB


def encrypted(user: str, algorithm: str, clone_from: bytes | None = None) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(clone_from) if clone_from else str(PAPER))
    writer.encrypt(user_password=user, owner_password="owner-only-secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def attribute_heavy_html() -> bytes:
    """HTML whose parse tree takes over 10 times its size in memory."""
    attributes = b" ".join(b"a%d=%d" % (i, i) for i in range(200))
    return (b"<p " + attributes + b">x</p>") * 20_000  # 32 MB (built in memory; nothing on disk)


def random_text() -> bytes:
    return os.urandom(64 * 1024).replace(b"\x00", b"\x01")  # random bytes, no NUL to give them away


def random_high_bytes() -> bytes:
    return bytes(b | 0x80 for b in os.urandom(64 * 1024))  # every byte "printable" in Windows-1252


# name, bytes, the reason the report gives
HOSTILE = [
    ("bomb.docx", empty_paragraph_bomb, "decompresses to more than 12 MB"),
    ("wordy.docx", lambda: docx(paragraph("lorem ipsum dolor " * 100) * 150), "more than 200,000 characters"),
    ("inflating.pdf", inflating_pdf, "the content of its pages decompresses to more than 12 MB"),
    ("slow.pdf", slow_pdf, "reading it took longer than 3 s"),
    ("many-pages.pdf", lambda: pdf_with_contents([b""] * 41), "it has 41 pages (the limit is 40"),
    ("password-aes.pdf", lambda: encrypted("s3cret", "AES-256"), "encrypted PDF: it needs a password"),
    ("password-aes128.pdf", lambda: encrypted("s3cret", "AES-128"), "encrypted PDF: it needs a password"),
    ("random.txt", random_text, "binary data, not text"),
    ("high-bytes.txt", random_high_bytes, "binary data, not text"),
    ("huge.html", attribute_heavy_html, "more than 300 MB of memory"),
]


@pytest.fixture
def limited(home: Path, embedder):
    with Container(make_settings(home, **LIMITS), embedder=embedder) as c:
        yield c


def test_fixtures_are_small_on_disk() -> None:
    sizes = {name: len(make()) for name, make, _ in HOSTILE if name != "huge.html"}
    assert max(sizes.values()) < 2_000_000, sizes
    assert sizes["bomb.docx"] < 100_000 and sizes["inflating.pdf"] < 100_000


def test_hostile_files_get_their_reasons_and_the_rest_load(limited: Container) -> None:
    before, after = good_files()
    manual = pdf_with_contents([b"BT /F1 12 Tf 72 700 Td (The locked ferry manual names the code FERRY-LOCK-7.) Tj ET"])
    owner_locked = InputFile.from_bytes("owner-locked-aes.pdf", encrypted("", "AES-256", manual))
    files = [before, *(InputFile.from_bytes(n, m()) for n, m, _ in HOSTILE), owner_locked, after]
    limited.embedder.embed(["warm the model up before measuring this process"] * 8)
    own_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    report = limited.loader.load("local", "hostile", files)
    elapsed = time.monotonic() - started
    reasons = {o.name: o.reason for o in report.outcomes if o.status == "failed"}
    for name, _, reason in HOSTILE:
        # On a busy machine the time limit can stop the HTML before the memory limit does: either is a clear
        # reason (test_the_parser_runs_in_another_process checks the memory limit alone).
        stopped = [reason, "reading it took longer than 3 s"] if name == "huge.html" else [reason]
        assert any(r in reasons.get(name, "") for r in stopped), (name, reasons.get(name))
    loaded = {o.name for o in report.outcomes if o.status == "loaded"}
    assert loaded == {"before.txt", "owner-locked-aes.pdf", "after.md"}
    assert_only(limited, "hostile", loaded)
    [hit] = limited.sources.search("local", ["hostile"], "FERRY-LOCK-7", k=1, mode="keyword").hits
    assert hit.file_name == "owner-locked-aes.pdf"
    # Generous bounds: the slow PDF is cut at 3 s (pypdf needs about 6 s for it on an idle core); nothing else
    # should take long or grow this process much.
    assert elapsed < 90, elapsed
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - own_before) / 1024
    assert grown_mb < 300, grown_mb
    parser_mb = limited.parser.peak_rss_kb / 1024  # as the parser processes measured themselves
    assert 20 < parser_mb <= 300, parser_mb  # RLIMIT_AS caps their address space, so their resident size too


def test_a_parser_process_that_timed_out_is_replaced(tmp_path: Path) -> None:
    pool = ParserPool(ExpansionLimits(seconds=2, memory_mb=512), workers=1)
    try:
        with pytest.raises(FileRejected, match="took longer than 2 s"):
            pool.parse("slow.pdf", slow_pdf())
        pages = pool.parse("paper.pdf", PAPER.read_bytes())
        assert len(pages) > 5 and "MemGPT" in " ".join(pages)
    finally:
        pool.close()


def test_the_parser_runs_in_another_process() -> None:
    """A reader's memory use lands in the parser process, not in the bot: RLIMIT_AS there, nothing here."""
    pool = ParserPool(ExpansionLimits(memory_mb=300), workers=1)
    try:
        with pytest.raises(FileRejected, match="more than 300 MB of memory"):
            pool.parse("huge.html", attribute_heavy_html())
        assert pool.parse("ok.html", b"<p>after the bomb, the pool still parses</p>") == [
            "after the bomb, the pool still parses"]
    finally:
        pool.close()


def test_a_parser_process_started_ahead_is_the_one_that_parses() -> None:
    """`membot load` starts a parser process before its first parse, only when a file will need one."""
    pool = ParserPool(ExpansionLimits(memory_mb=512), workers=1)
    try:
        pool.start(["notes.txt", "readme.md"])
        assert pool._idle == []  # text is parsed in this process: no interpreter started for nothing
        pool.start(["notes.txt", "paper.pdf"])
        (ahead,) = pool._idle
        pool.start(["other.pdf"])  # one waiting is enough
        assert pool._idle == [ahead]
        pages = pool.parse("paper.pdf", PAPER.read_bytes())
        assert "MemGPT" in " ".join(pages)
        assert pool._idle == [ahead] and ahead.alive()  # the same process, given back for the next file
    finally:
        pool.close()
    assert not ahead.alive()


def test_owner_locked_rc4_and_aes_pdfs_open_in_process() -> None:
    parser = InProcessParser()
    for algorithm in ("RC4-128", "AES-128", "AES-256"):
        pages = parser.parse("locked.pdf", encrypted("", algorithm))
        assert "MemGPT" in pages[0], algorithm


def test_docx_reads_paragraphs_and_tables_in_order() -> None:
    row = b"<w:tr><w:tc>" + paragraph("Alice") + b"</w:tc><w:tc>" + paragraph("4200") + b"</w:tc></w:tr>"
    body = paragraph("Intro line") + b"<w:tbl>" + row + b"</w:tbl>" + b"<w:p/>" * 5 + paragraph("Closing line")
    assert InProcessParser().parse("t.docx", docx(body)) == ["Intro line\nAlice | 4200\nClosing line"]


@pytest.mark.parametrize("text", ["Ein Bericht über Größe, Maße und Preise: 12 € je Stück.",
                                  "Plain ASCII notes\twith tabs\r\nand Windows line ends.\f"])
def test_real_text_still_loads(text: str) -> None:
    for data in (text.encode("utf-8"), text.encode("cp1252")):
        assert InProcessParser().parse("notes.txt", data) == [text]


def test_ligatures_are_normalised_for_keyword_search(container: Container) -> None:
    text = "The ring Buﬀer overﬂow in the ﬁrmware was ﬁxed by the oﬃce team."
    container.loader.load("local", "ligatures", [InputFile.from_bytes("fw.txt", text.encode())])
    hits = container.sources.search("local", ["ligatures"], "buffer overflow firmware", k=1, mode="keyword").hits
    assert hits and "Buffer overflow" in hits[0].text
    assert container.sources.search("local", ["ligatures"], "oﬃce", k=1, mode="keyword").total == 1
