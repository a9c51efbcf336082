"""Loading files into data sources, in-process on SQLite + Milvus Lite with the real model: counts, formats,
idempotence, replacement of changed files, progress, and the embedding-model guard."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from sqlmodel import Session, select

from agent.archival.milvus_store import CollectionData
from agent.db.models import Document, Source
from agent.embeddings.base import Progress, normalise
from agent.errors import EmbeddingMismatch, UserError
from agent.loading.inputs import InputFile, collect_files
from agent.loading.loader import FileOutcome, Loader, LoadProgress
from bot.container import Container
from bot.progress import RichLoadProgress
from tests.conftest import PAPER

WORDS = ("memory agent context window paging archival recall passage vector search storage kernel process "
         "thread signal socket buffer cache index query token model embed layer cluster shard replica commit "
         "rollback journal ledger").split()


def prose(marker: str, sentences: int, seed: int = 0) -> str:
    """Deterministic filler text, `sentences` long, that mentions `marker` once at the start."""
    rng = np.random.default_rng(seed)
    lines = [f"This file is about {marker}."]
    for n in range(sentences):
        lines.append(" ".join(rng.choice(WORDS, 12)).capitalize() + f" (note {n}).")
    return "\n".join(lines)


def txt(name: str, text: str) -> InputFile:
    return InputFile.from_bytes(name, text.encode("utf-8"))


def source_of(c: Container, name: str) -> Source:
    return c.catalog.get("local", name)


def stored(c: Container, name: str) -> CollectionData:
    return c.passages.read_all(c.passages.source_collection(int(source_of(c, name).id or 0)))


def every_document(c: Container, source_id: int) -> list[Document]:
    """All document rows of a source, whatever their status."""
    with Session(c.engine) as s:
        return list(s.exec(select(Document).where(Document.source_id == source_id)).all())


def assert_consistent(c: Container, name: str) -> CollectionData:
    """Catalog and Milvus agree: only ready documents, each with exactly its passages, nothing else stored."""
    source = source_of(c, name)
    docs = every_document(c, int(source.id or 0))
    assert [d.status for d in docs] == ["ready"] * len(docs), [(d.file_name, d.status) for d in docs]
    data = stored(c, name)
    assert len(set(data.ids.tolist())) == len(data.ids), "a passage is stored twice"
    per_doc = {d.id: d.passage_count for d in docs}
    counted = {int(i): int((data.document_ids == i).sum()) for i in set(data.document_ids.tolist())}
    assert counted == per_doc
    summary = c.catalog.summary(source)
    assert summary.passages == len(data.ids) == sum(per_doc.values())
    assert summary.files == len(docs)
    return data


def keyword_total(c: Container, name: str, query: str) -> int:
    return c.sources.search("local", [name], query, k=5, mode="keyword").total


# the paper ---------------------------------------------------------------------------------------------
def test_paper_loads_as_13_documents_once(container: Container, embedder) -> None:
    report = container.loader.load("local", "paper", [InputFile.from_path(PAPER)])
    assert [(o.name, o.status, o.documents) for o in report.outcomes] == [("memgpt_paper.pdf", "loaded", 13)]
    passages = report.passages
    assert 55 <= passages <= 75
    assert report.summary() == f"Loaded {passages} passages and 13 documents from paper"

    data = assert_consistent(container, "paper")
    assert len(data.ids) == passages
    assert set(data.pages.tolist()) == set(range(1, 14))  # every page is cited, 1-based
    assert sorted(data.chunk_indexes.tolist()) == list(range(passages))
    assert set(data.file_names) == {"memgpt_paper.pdf"}
    assert data.vectors.shape == (passages, 384)
    assert np.allclose(np.linalg.norm(data.vectors, axis=1), 1.0, atol=1e-4)
    longest = max(len(embedder.tokens.spans(t)) for t in data.texts)
    assert longest <= embedder.max_tokens - 2  # no passage is cut off by the model

    summary, docs = container.sources.show("local", "paper")
    assert (summary.files, summary.documents, summary.passages) == (1, 13, passages)
    [doc] = docs
    assert (doc.file_name, doc.page_count, doc.passage_count) == ("memgpt_paper.pdf", 13, passages)
    assert doc.size_bytes == PAPER.stat().st_size
    assert doc.content_hash == hashlib.sha256(PAPER.read_bytes()).hexdigest()
    revision = source_of(container, "paper").revision

    again = container.loader.load("local", "paper", [InputFile.from_path(PAPER)])
    assert [(o.status, o.reason) for o in again.outcomes] == [("unchanged", "already loaded; nothing added")]
    assert again.summary() == ("Loaded 0 passages and 0 documents from paper "
                               "(1 file(s) already loaded, nothing added)")
    assert len(assert_consistent(container, "paper").ids) == passages
    assert source_of(container, "paper").revision == revision


# formats -----------------------------------------------------------------------------------------------
def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly notes", level=1)
    document.add_paragraph("The docx paragraph names the codeword HEPTAGON-DOCX-11.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "owner"
    table.cell(0, 1).text = "budget"
    table.cell(1, 0).text = "TABLECELL-ALICE-22"
    table.cell(1, 1).text = "4200"
    document.save(str(path))


def test_docx_html_markdown_and_text_load(container: Container, tmp_path: Path) -> None:
    make_docx(tmp_path / "notes.docx")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Status</title><style>.x{color:red} STYLEWORD</style>"
        "<script>var SCRIPTWORD = 1;</script></head>"
        "<body><h1>Status page</h1><p>The html body names OCTAGON-HTML-33.</p></body></html>")
    (tmp_path / "readme.md").write_text("# Readme\n\nThe markdown names PENTAGON-MD-44.\n")
    (tmp_path / "plain.txt").write_text("The text file names HEXAGON-TXT-55.\n")
    files, passed_over = collect_files([], str(tmp_path), False, [".docx", ".html", ".md", ".txt"])
    assert passed_over == 0
    report = container.loader.load("local", "formats", files)
    assert {o.name: (o.status, o.documents) for o in report.outcomes} == {
        "notes.docx": ("loaded", 1), "page.html": ("loaded", 1), "readme.md": ("loaded", 1),
        "plain.txt": ("loaded", 1)}
    data = assert_consistent(container, "formats")
    text_of = {f: t for f, t in zip(data.file_names, data.texts)}
    assert "HEPTAGON-DOCX-11" in text_of["notes.docx"] and "TABLECELL-ALICE-22 | 4200" in text_of["notes.docx"]
    assert "OCTAGON-HTML-33" in text_of["page.html"]
    assert "SCRIPTWORD" not in text_of["page.html"] and "STYLEWORD" not in text_of["page.html"]
    assert "<p>" not in text_of["page.html"]
    assert set(data.pages.tolist()) == {0}  # only PDFs have pages
    for code, file in [("HEPTAGON-DOCX-11", "notes.docx"), ("OCTAGON-HTML-33", "page.html"),
                       ("PENTAGON-MD-44", "readme.md"), ("HEXAGON-TXT-55", "plain.txt")]:
        hits = container.sources.search("local", ["formats"], code, k=1).hits
        assert hits[0].file_name == file and code in hits[0].text


def test_text_encodings_are_read_faithfully(container: Container) -> None:
    files = [
        InputFile.from_bytes("latin1.txt", "Le café crème coûte 3 €.".encode("cp1252")),
        InputFile.from_bytes("utf16.txt", "Die Straße ist naß; Größe zählt.".encode("utf-16")),
        InputFile.from_bytes("bom.txt", "\ufeffUTF-8 with a byte-order mark: ünïcödé.".encode()),
    ]
    report = container.loader.load("local", "enc", files)
    assert [o.status for o in report.outcomes] == ["loaded"] * 3, report.outcomes
    text_of = dict(zip(stored(container, "enc").file_names, stored(container, "enc").texts))
    assert text_of == {"latin1.txt": "Le café crème coûte 3 €.",
                       "utf16.txt": "Die Straße ist naß; Größe zählt.",
                       "bom.txt": "UTF-8 with a byte-order mark: ünïcödé."}


# choosing files ----------------------------------------------------------------------------------------
def test_collect_files_by_extension_and_recursion(tmp_path: Path) -> None:
    for rel in ["a.txt", "b.md", "c.PDF", "d.docx", "e.html", "f.xyz", "sub/g.txt", "sub/deeper/h.md",
                "sub/i.bin"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)

    def names(files: Sequence[InputFile]) -> list[str]:
        return [f.name for f in files]

    files, passed_over = collect_files([], str(tmp_path), False, [".txt", ".md", ".pdf"])
    assert (names(files), passed_over) == (["a.txt", "b.md", "c.PDF"], 3)
    assert files[0].read() == b"a.txt" and files[0].size == 5
    files, passed_over = collect_files([], str(tmp_path), True, [".txt", ".md", ".pdf"])
    assert (names(files), passed_over) == (["a.txt", "b.md", "c.PDF", "sub/deeper/h.md", "sub/g.txt"], 4)
    files, passed_over = collect_files([], str(tmp_path), False, ["docx", ".HTML"])
    assert (names(files), passed_over) == (["d.docx", "e.html"], 4)
    files, passed_over = collect_files([str(tmp_path / "f.xyz"), str(tmp_path / "sub" / "g.txt")], None, False,
                                       [".txt"])
    assert (names(files), passed_over) == (["f.xyz", "g.txt"], 0)  # named files are taken whatever their type


@pytest.mark.parametrize(("files", "directory", "message"), [
    ([], None, "Give either --input-files or --input-dir"),
    (["a.txt"], "dir", "Give either --input-files or --input-dir"),
    (["missing.txt"], None, "missing.txt: no such file."),
    ([], "missing-dir", "missing-dir: no such directory."),
    (["a.txt", "sub/a.txt"], None, "Two input files share the name a.txt"),
])
def test_collect_files_refuses_bad_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[str],
                                             directory: str | None, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "dir").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub" / "a.txt").write_text("b")
    with pytest.raises(UserError, match=message):
        collect_files(files, directory, False, [".txt"])


# idempotence and replacement -----------------------------------------------------------------------------
def test_reloading_the_same_files_adds_nothing(container: Container) -> None:
    files = [txt("a.txt", prose("ALPHAQUILL", 40, 1)), txt("b.txt", prose("BRAVOTWIG", 5, 2))]
    first = container.loader.load("local", "notes", files)
    assert [o.status for o in first.outcomes] == ["loaded", "loaded"]
    before = len(assert_consistent(container, "notes").ids)
    assert before == first.passages > 2

    again = container.loader.load("local", "notes", files)
    assert [(o.status, o.passages) for o in again.outcomes] == [("unchanged", 0), ("unchanged", 0)]
    assert again.passages == 0 and "2 file(s) already loaded, nothing added" in again.summary()
    copy = container.loader.load("local", "notes", [txt("copy-of-a.txt", prose("ALPHAQUILL", 40, 1))])
    assert [(o.status, o.reason) for o in copy.outcomes] == [("unchanged", "same content as a.txt; nothing added")]
    assert len(assert_consistent(container, "notes").ids) == before
    assert keyword_total(container, "notes", "ALPHAQUILL") == 1


def test_changed_file_replaces_its_old_passages(container: Container) -> None:
    v1 = prose("OLDCODE-ZEBRA-71", 60, 3)
    v2 = "The new version only says NEWCODE-OKAPI-72 and nothing else."
    other = txt("other.txt", prose("OTHERFILE-KEPT-73", 8, 4))
    first = container.loader.load("local", "docs", [txt("a.txt", v1), other])
    v1_passages = first.outcomes[0].passages
    assert v1_passages >= 3
    assert keyword_total(container, "docs", "OLDCODE-ZEBRA-71") == 1  # also fills the search cache

    second = container.loader.load("local", "docs", [txt("a.txt", v2), other])
    assert [(o.name, o.status, o.passages) for o in second.outcomes] == [
        ("a.txt", "replaced", 1), ("other.txt", "unchanged", 0)]
    assert "1 changed file(s) replaced" in second.summary()
    data = assert_consistent(container, "docs")
    assert len(data.ids) == 1 + first.outcomes[1].passages
    assert not [t for t in data.texts if "OLDCODE-ZEBRA-71" in t]
    [doc] = [d for d in container.catalog.documents(int(source_of(container, "docs").id or 0))
             if d.file_name == "a.txt"]
    assert doc.content_hash == hashlib.sha256(v2.encode()).hexdigest() and doc.passage_count == 1

    assert keyword_total(container, "docs", "OLDCODE-ZEBRA-71") == 0
    hybrid = container.sources.search("local", ["docs"], "OLDCODE-ZEBRA-71", k=50).hits
    assert not [h for h in hybrid if "OLDCODE-ZEBRA-71" in h.text]
    [hit] = container.sources.search("local", ["docs"], "NEWCODE-OKAPI-72", k=1).hits
    assert (hit.file_name, hit.text) == ("a.txt", v2)
    assert keyword_total(container, "docs", "OTHERFILE-KEPT-73") == 1

    # Going back to the first version is a change too.
    third = container.loader.load("local", "docs", [txt("a.txt", v1)])
    assert [(o.status, o.passages) for o in third.outcomes] == [("replaced", v1_passages)]
    assert_consistent(container, "docs")
    assert keyword_total(container, "docs", "NEWCODE-OKAPI-72") == 0
    assert keyword_total(container, "docs", "OLDCODE-ZEBRA-71") == 1


# progress ----------------------------------------------------------------------------------------------
class Recorder(LoadProgress):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def file_started(self, name: str, passages: int) -> None:
        self.events.append(("started", (name, passages)))

    def advanced(self, passages: int) -> None:
        self.events.append(("advanced", passages))

    def file_finished(self, outcome: FileOutcome) -> None:
        self.events.append(("finished", outcome))


def test_progress_reports_every_file_and_passage(container: Container) -> None:
    big = txt("big.txt", prose("PROGRESS-BIG", 500, 5))
    recorder = Recorder()
    report = container.loader.load("local", "prog", [big, txt("empty.txt", " \n"), txt("small.txt", "one line")],
                                   recorder)
    kinds = [k for k, _ in recorder.events]
    assert [v for k, v in recorder.events if k == "finished"] == report.outcomes
    assert [o.status for o in report.outcomes] == ["loaded", "failed", "loaded"]
    big_passages = report.outcomes[0].passages
    assert big_passages > 32  # more than one embedding batch
    started = kinds.index("started")
    assert recorder.events[started] == ("started", ("big.txt", big_passages))
    first_done = kinds.index("finished")
    assert sum(int(v) for k, v in recorder.events[started:first_done] if k == "advanced") == big_passages  # type: ignore[call-overload]
    assert kinds[started:first_done].count("advanced") >= 2
    # The empty file fails before it is embedded: no bar for it.
    assert [v for k, v in recorder.events if k == "started"] == [("big.txt", big_passages), ("small.txt", 1)]


def test_rich_progress_bar_draws_files_and_passages(container: Container) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system=None, width=100)
    files = [txt("first.txt", prose("BAR-ONE", 30, 6)), txt("second.txt", prose("BAR-TWO", 30, 7))]
    with RichLoadProgress(len(files), console) as bar:
        report = container.loader.load("local", "bar", files, bar)
    drawn = out.getvalue()
    assert "files" in drawn and "embedding first.txt" in drawn and "embedding second.txt" in drawn
    assert "2/2" in drawn
    assert f"{report.outcomes[1].passages}/{report.outcomes[1].passages}" in drawn


# the embedding-model guard -----------------------------------------------------------------------------
class FakeEmbedder:
    """A different (hash-based) model: what a source would hold had it been loaded with another model."""

    model = "fake-hash-embedder"
    dim = 16
    max_tokens = 128

    def __init__(self, tokens) -> None:  # type: ignore[no-untyped-def]
        self.tokens = tokens

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[: self.dim], dtype=np.uint8) for t in texts]
        if progress:
            progress(len(texts))
        return normalise(np.asarray(rows, dtype=np.float32) - 127.5)


def test_loading_with_another_model_is_refused(container: Container, embedder) -> None:
    container.loader.load("local", "real", [txt("a.txt", "Passages embedded with MiniLM.")])
    before = len(assert_consistent(container, "real").ids)
    fake = FakeEmbedder(embedder.tokens)
    other = Loader(container.catalog, container.passages, fake, 300, 20, 10_000_000)
    with pytest.raises(EmbeddingMismatch) as err:
        other.load("local", "real", [txt("b.txt", "More passages, from another model.")])
    message = str(err.value)
    assert "Source 'real' holds passages embedded with all-MiniLM-L6-v2-onnx-int8 (384 dimensions)" in message
    assert "the configured model is fake-hash-embedder (16)" in message
    assert "set MEMBOT_EMBEDDING_MODEL=all-MiniLM-L6-v2-onnx-int8." in message
    assert len(assert_consistent(container, "real").ids) == before
    assert [d.file_name for d in container.sources.show("local", "real")[1]] == ["a.txt"]

    # The fake model works on a source of its own, which the real model then refuses to search.
    report = other.load("local", "faked", [txt("c.txt", "Embedded by the fake model.")])
    assert report.passages == 1 and source_of(container, "faked").embedding_dim == 16
    with pytest.raises(EmbeddingMismatch, match="faked was embedded with fake-hash-embedder"):
        container.sources.search("local", ["faked"], "fake model")


# two loads at once ---------------------------------------------------------------------------------------
def test_a_second_load_leaves_a_new_source_that_is_still_embedding_alone(container: Container) -> None:
    """A bot loads uploads from many channels at once: while one load is still embedding the first file of a new
    source, another load's clean-up of interrupted loads must not take that source for an abandoned one."""
    other_report: list[object] = []

    class LoadAnotherMeanwhile(LoadProgress):
        def advanced(self, passages: int) -> None:
            if not other_report:  # once, while the first file of "first" is being embedded
                other_report.append(container.loader.load("local", "second", [txt("b.txt", "Second source.")]))

    report = container.loader.load("local", "first", [txt("a.txt", prose("FIRSTSOURCE-QUINCE", 40, 8))],
                                   LoadAnotherMeanwhile())
    assert other_report and other_report[0].passages == 1  # type: ignore[attr-defined]
    assert [o.status for o in report.outcomes] == ["loaded"]
    assert [s.source.name for s in container.sources.summaries("local")] == ["first", "second"]
    assert_consistent(container, "first")
    assert_consistent(container, "second")
    assert keyword_total(container, "first", "FIRSTSOURCE-QUINCE") == 1


def test_two_loads_creating_the_same_new_source_at_once(container: Container,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two uploads to one new source name: the second finds no source, then cannot create it (the first just
    did). It must load into the source the first created."""
    from agent.archival.catalog import Catalog

    container.loader.load("local", "shared", [txt("a.txt", "The first upload names FIRSTUPLOAD-KIWI.")])
    real_find = Catalog.find
    looks: list[str] = []

    def find_before_the_other_committed(self: Catalog, scope: str, name: str) -> Source | None:
        looks.append(name)
        return None if len(looks) == 1 else real_find(self, scope, name)

    monkeypatch.setattr(Catalog, "find", find_before_the_other_committed)
    report = container.loader.load("local", "shared", [txt("b.txt", "The second upload names SECONDUPLOAD-FIG.")])
    monkeypatch.setattr(Catalog, "find", real_find)
    assert looks[:2] == ["shared", "shared"]
    assert [o.status for o in report.outcomes] == ["loaded"]
    assert [(s.source.name, s.files) for s in container.sources.summaries("local")] == [("shared", 2)]
    assert_consistent(container, "shared")
