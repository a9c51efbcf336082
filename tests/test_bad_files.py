"""Loading is atomic per file: a file that cannot be loaded is reported by name with its reason, the other
files still load, and nothing of the failed file stays visible (catalog or Milvus)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, select

from agent.archival.milvus_store import PassageStore
from agent.db.models import Document
from agent.loading.inputs import InputFile
from bot.container import Container
from tests.conftest import PAPER, make_settings

GOOD_BEFORE = "Before the bad file: the harbour master logs every ship named KESTREL-ALPHA."
GOOD_AFTER = "After the bad file: the lighthouse keeper records the beacon code LANTERN-OMEGA."


def good_files() -> tuple[InputFile, InputFile]:
    return (InputFile.from_bytes("before.txt", GOOD_BEFORE.encode()),
            InputFile.from_bytes("after.md", GOOD_AFTER.encode()))


def encrypted_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(PAPER))
    writer.encrypt(user_password="s3cret", owner_password="owner-s3cret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def blank_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def truncated_pdf() -> bytes:
    data = PAPER.read_bytes()
    return data[: len(data) // 3]


def corrupt_docx() -> bytes:
    return b"PK\x03\x04 this is not really a zip archive"


def all_documents(c: Container) -> list[Document]:
    with Session(c.engine) as s:
        return list(s.exec(select(Document)).all())


def assert_only(c: Container, source: str, names: set[str]) -> None:
    """The source holds exactly `names`, fully loaded, in the catalog and in Milvus; nothing else anywhere."""
    docs = all_documents(c)
    assert {(d.file_name, d.status) for d in docs} == {(n, "ready") for n in names}
    src = c.catalog.get("local", source)
    data = c.passages.read_all(c.passages.source_collection(int(src.id or 0)))
    assert set(data.file_names) == names
    assert set(data.document_ids.tolist()) == {d.id for d in docs}
    assert c.catalog.summary(src).passages == len(data.ids) == sum(d.passage_count for d in docs)


# name, bytes (or a factory), the reason the report must give
CASES: list[tuple[str, Callable[[], bytes], str]] = [
    ("corrupt.pdf", lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without end",
     "corrupt or unreadable PDF"),
    ("truncated.pdf", truncated_pdf, "corrupt or unreadable PDF"),
    ("not-a-pdf.pdf", lambda: b"Just some text that claims to be a PDF.", "corrupt or unreadable PDF"),
    ("locked.pdf", encrypted_pdf, "encrypted PDF: it needs a password"),
    ("scanned.pdf", blank_pdf, "no text could be extracted (a scanned PDF needs OCR first)"),
    ("empty.txt", lambda: b"", "the file is empty"),
    ("blank.md", lambda: b"  \n\t\r\n  ", "the file is empty"),
    ("binary.txt", lambda: b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4, "binary data, not text"),
    ("broken.docx", corrupt_docx, "corrupt or unreadable .docx"),
    ("archive.zip", lambda: b"PK\x03\x04 some zip", "file type '.zip' is not supported"),
    ("Makefile", lambda: b"all:\n\techo hi\n", "file type '(none)' is not supported"),
    ("bad-utf16.txt", lambda: b"\xff\xfeA\x00\x00\xd8", "not valid UTF-16 text"),
]


@pytest.mark.parametrize(("name", "make", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_file_is_reported_and_the_others_load(container: Container, name: str, make: Callable[[], bytes],
                                                  reason: str) -> None:
    before, after = good_files()
    report = container.loader.load("local", "mixed", [before, InputFile.from_bytes(name, make()), after])
    assert [(o.name, o.status) for o in report.outcomes] == [
        ("before.txt", "loaded"), (name, "failed"), ("after.md", "loaded")]
    failed = report.outcomes[1]
    assert reason in failed.reason, failed.reason
    assert (failed.passages, failed.documents) == (0, 0)
    assert report.summary() == "Loaded 2 passages and 2 documents from mixed (1 file(s) failed)"
    assert_only(container, "mixed", {"before.txt", "after.md"})
    hits = container.sources.search("local", ["mixed"], "beacon code LANTERN-OMEGA", k=5).hits
    assert hits[0].file_name == "after.md"


def test_all_bad_files_leave_no_source_behind(container: Container) -> None:
    files = [InputFile.from_bytes(n, m()) for n, m, _ in CASES[:6]]
    report = container.loader.load("local", "doomed", files)
    assert [o.status for o in report.outcomes] == ["failed"] * 6
    assert report.summary() == "Loaded 0 passages and 0 documents from doomed (6 file(s) failed)"
    assert container.catalog.find("local", "doomed") is None
    assert container.sources.summaries("local") == []
    assert all_documents(container) == []
    assert [c for c in container.passages._client.list_collections() if c.startswith("membot_src_")] == []


def test_a_failed_new_version_keeps_the_old_one(container: Container) -> None:
    old = "The safe combination is 31-47-12 according to FIRSTVERSION notes."
    container.loader.load("local", "safe", [InputFile.from_bytes("notes.txt", old.encode())])
    for bad, reason in [(b"", "the file is empty"), (b"\x00\x01\x02binary", "binary data, not text")]:
        report = container.loader.load("local", "safe", [InputFile.from_bytes("notes.txt", bad)])
        assert [(o.status, reason in o.reason) for o in report.outcomes] == [("failed", True)]
        assert_only(container, "safe", {"notes.txt"})
        [hit] = container.sources.search("local", ["safe"], "FIRSTVERSION safe combination", k=1).hits
        assert hit.text == old


def test_too_large_file_names_the_limit(home: Path, embedder) -> None:
    with Container(make_settings(home, MEMBOT_MAX_FILE_MB="0.002"), embedder=embedder) as c:
        big = ("All work and no play makes a dull report. " * 120).encode()  # 5,040 bytes
        lying = InputFile("lying.txt", lambda: big, size=10)  # a size that turns out wrong when read
        before, after = good_files()
        report = c.loader.load("local", "sized", [before, InputFile.from_bytes("big.txt", big), lying, after])
        assert [(o.name, o.status) for o in report.outcomes] == [
            ("before.txt", "loaded"), ("big.txt", "failed"), ("lying.txt", "failed"), ("after.md", "loaded")]
        expected = "too large: 0.00504 MB (the limit is 0.002 MB; set MEMBOT_MAX_FILE_MB to change it)"
        assert report.outcomes[1].reason == expected
        assert report.outcomes[2].reason == expected
        assert_only(c, "sized", {"before.txt", "after.md"})


def test_unreadable_paths(container: Container, tmp_path: Path) -> None:
    """Paths whose read fails for every user, root included: the OS refuses them, the loader reports each."""
    (tmp_path / "folder.txt").mkdir()
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    os.mkfifo(tmp_path / "pipe.txt")  # reading a FIFO with no writer would block forever
    vanished = tmp_path / "vanished.txt"
    vanished.write_text("Here when the load was planned, gone when it ran.")
    planned = InputFile.from_path(vanished)
    vanished.unlink()
    before, after = good_files()
    files = [before, InputFile.from_path(tmp_path / "folder.txt"), InputFile.from_path(tmp_path / "dangling.txt"),
             InputFile.from_path(tmp_path / "pipe.txt"), planned, after]
    report = container.loader.load("local", "paths", files)
    reasons = {o.name: o.reason for o in report.outcomes if o.status == "failed"}
    assert reasons == {
        "folder.txt": "cannot be read: it is a directory (load one with --input-dir)",
        "dangling.txt": f"cannot be read: a broken symbolic link to {tmp_path / 'gone.txt'}",
        "pipe.txt": "cannot be read: not a regular file (a named pipe)",
        "vanished.txt": "cannot be read: No such file or directory",
    }
    assert_only(container, "paths", {"before.txt", "after.md"})


def test_store_failure_mid_insert_takes_back_the_written_rows(container: Container,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Milvus failing after half of a file's rows were written: those rows are deleted again."""
    before, after = good_files()
    container.loader.load("local", "atomic", [before])
    long_text = " ".join(f"Sentence {n} of the long file mentions HALFWRITTEN-{n}." for n in range(250))
    real_insert = PassageStore.insert
    written: list[int] = []

    def half_then_fail(self: PassageStore, collection: str, rows) -> int:  # type: ignore[no-untyped-def]
        rows = list(rows)
        written.append(real_insert(self, collection, rows[: len(rows) // 2]))
        raise RuntimeError("Milvus went away mid-insert")

    monkeypatch.setattr(PassageStore, "insert", half_then_fail)
    with pytest.raises(RuntimeError, match="went away"):
        container.loader.load("local", "atomic", [InputFile.from_bytes("long.txt", long_text.encode())])
    assert written and written[0] >= 5  # rows really were written before the failure
    monkeypatch.setattr(PassageStore, "insert", real_insert)
    assert_only(container, "atomic", {"before.txt"})
    assert container.sources.search("local", ["atomic"], "HALFWRITTEN-7", k=5, mode="keyword").total == 0

    # The same failure on a new source's first file leaves no source at all.
    monkeypatch.setattr(PassageStore, "insert", half_then_fail)
    with pytest.raises(RuntimeError):
        container.loader.load("local", "fresh", [InputFile.from_bytes("long.txt", long_text.encode())])
    monkeypatch.setattr(PassageStore, "insert", real_insert)
    assert container.catalog.find("local", "fresh") is None
    assert [s.source.name for s in container.sources.summaries("local")] == ["atomic"]

    report = container.loader.load("local", "atomic", [before, InputFile.from_bytes("long.txt", long_text.encode()),
                                                       after])
    assert [o.status for o in report.outcomes] == ["unchanged", "loaded", "loaded"]
    assert_only(container, "atomic", {"before.txt", "long.txt", "after.md"})
