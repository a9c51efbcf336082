"""Loading files into a source, atomically per file: a file is visible fully loaded, or not at all."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.archival.catalog import Catalog
from agent.archival.milvus_store import PassageRow, PassageStore, now_ms, passage_id
from agent.db.models import Source
from agent.embeddings.base import Embedder
from agent.errors import EmbeddingMismatch, FileRejected
from agent.loading.chunker import chunk_pages
from agent.loading.inputs import InputFile
from agent.loading.parser import InProcessParser, Parser
from agent.names import FILE_NAME_LIMIT, clean_file_name, clean_name, display

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileOutcome:
    name: str
    status: str  # loaded | replaced | unchanged | failed
    passages: int = 0
    documents: int = 0
    reason: str = ""


@dataclass
class LoadReport:
    source: str
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def passages(self) -> int:
        return sum(o.passages for o in self.outcomes if o.status in ("loaded", "replaced"))

    @property
    def documents(self) -> int:
        return sum(o.documents for o in self.outcomes if o.status in ("loaded", "replaced"))

    def of(self, status: str) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == status]

    def summary(self) -> str:
        line = f"Loaded {self.passages} passages and {self.documents} documents from {self.source}"
        extra = []
        if self.of("replaced"):
            extra.append(f"{len(self.of('replaced'))} changed file(s) replaced")
        if self.of("unchanged"):
            extra.append(f"{len(self.of('unchanged'))} file(s) already loaded, nothing added")
        if self.of("failed"):
            extra.append(f"{len(self.of('failed'))} file(s) failed")
        return line + (f" ({'; '.join(extra)})" if extra else "")


class LoadProgress:
    """Callbacks a front end implements to show progress; the default shows nothing."""

    def file_started(self, name: str, passages: int) -> None: ...
    def advanced(self, passages: int) -> None: ...
    def file_finished(self, outcome: FileOutcome) -> None: ...


class Loader:
    def __init__(self, catalog: Catalog, store: PassageStore, embedder: Embedder, chunk_tokens: int,
                 chunk_overlap: int, max_bytes: int, parser: Parser | None = None) -> None:
        self.catalog = catalog
        self.store = store
        self.embedder = embedder
        # Chunks never exceed what the model reads (2 places go to its [CLS] and [SEP] tokens).
        self.chunk_tokens = min(chunk_tokens, embedder.max_tokens - 2)
        self.chunk_overlap = min(chunk_overlap, self.chunk_tokens // 4)
        self.max_bytes = max_bytes
        self.parser = parser or InProcessParser()  # the composition root passes a ParserPool

    def load(self, scope: str, name: str, files: Sequence[InputFile], progress: LoadProgress | None = None
             ) -> LoadReport:
        progress = progress or LoadProgress()
        name = clean_name(name)  # before anything is written: a bad name is refused with its reason
        self.recover()
        source = self._source(scope, name)
        report = LoadReport(source.name)  # the existing source's spelling when the case differs
        try:
            for file in files:
                outcome = self._load_one(source, file, progress)
                report.outcomes.append(outcome)
                progress.file_finished(outcome)
        finally:
            self._drop_if_never_ready(source)
        return report

    def recover(self) -> None:
        """Remove what interrupted loads left: passages of unfinished or retired documents, empty sources.

        A load records its document (with its host:pid) before it embeds, so a new source that another load of
        this or another process is still filling always has a document and is left alone.
        """
        emptied: set[int] = set()
        for doc in self.catalog.abandoned():
            self.store.delete_documents(self.store.source_collection(doc.source_id), [int(doc.id or 0)])
            self.catalog.forget_documents([int(doc.id or 0)])
            emptied.add(doc.source_id)
            log.info("removed the passages of an interrupted or replaced load of %s", doc.file_name)
        for source in self.catalog.empty_unready_sources(emptied):
            self.store.drop(self.store.source_collection(int(source.id or 0)))
            self.catalog.delete_source(int(source.id or 0))

    def _source(self, scope: str, name: str) -> Source:
        model, dim = self.embedder.model, self.embedder.dim
        source = self.catalog.get_or_create(scope, name, model, dim, self.chunk_tokens)
        if (source.embedding_model, source.embedding_dim) != (model, dim):
            raise EmbeddingMismatch(
                f"Source {name!r} holds passages embedded with {source.embedding_model} ({source.embedding_dim} "
                f"dimensions); the configured model is {model} ({dim}). Load into a new source name, or set "
                f"MEMBOT_EMBEDDING_MODEL={source.embedding_model}."
            )
        if not source.ready and not self.catalog.documents(int(source.id or 0), "loading"):
            # A new source starts from an empty collection, whatever an earlier crash left under its id.
            self.store.drop(self.store.source_collection(int(source.id or 0)))
        return source

    def _drop_if_never_ready(self, source: Source) -> None:
        """A new source none of whose files loaded is removed, unless another load is still filling it."""
        fresh = self.catalog.by_id(int(source.id or 0))
        if fresh is not None and not fresh.ready and not self.catalog.documents(int(source.id or 0), "loading"):
            self.store.drop(self.store.source_collection(int(source.id or 0)))
            self.catalog.delete_source(int(source.id or 0))

    def _load_one(self, source: Source, file: InputFile, progress: LoadProgress) -> FileOutcome:
        shown = display(file.name)[:FILE_NAME_LIMIT]
        try:
            file = dataclasses.replace(file, name=clean_file_name(file.name))
            return self._load_file(source, file, progress)
        except FileRejected as exc:
            return FileOutcome(shown, "failed", reason=str(exc))
        except (MemoryError, OSError) as exc:
            return FileOutcome(shown, "failed", reason=f"{exc.__class__.__name__}: {exc}")

    def _load_file(self, source: Source, file: InputFile, progress: LoadProgress) -> FileOutcome:
        data = self._read(file)
        digest = hashlib.sha256(data).hexdigest()
        known = self.catalog.documents(int(source.id or 0))
        same = next((d for d in known if d.content_hash == digest), None)
        if same is not None:
            why = "already loaded" if same.file_name == file.name else f"same content as {same.file_name}"
            return FileOutcome(file.name, "unchanged", reason=f"{why}; nothing added")
        pages = self.parser.parse(file.name, data)
        numbered = Path(file.name).suffix.lower() == ".pdf"
        chunks = chunk_pages(pages, self.embedder.tokens, self.chunk_tokens, self.chunk_overlap, numbered)
        if not chunks:
            hint = " (a scanned PDF needs OCR first)" if numbered else ""
            raise FileRejected(f"no text could be extracted{hint}")
        source_id = int(source.id or 0)
        collection = self.store.source_collection(source_id)
        doc_id: int | None = None
        try:
            # Recorded before the slow part, so a crash at any point leaves a row that says whose load it was.
            doc_id = int(self.catalog.begin_document(source_id, file.name, digest, len(data), len(pages),
                                                     len(chunks)).id or 0)
            progress.file_started(file.name, len(chunks))
            vectors = self.embedder.embed([c.text for c in chunks], progress.advanced)
            stamp = now_ms()
            rows = [PassageRow(passage_id(doc_id, c.index), v, c.text, doc_id, file.name, c.page, c.index, stamp,
                               source_id=int(source.id or 0)) for c, v in zip(chunks, vectors)]
            self.store.ensure(collection, self.embedder.dim)
            self.store.insert(collection, rows)
            retired = self.catalog.commit_document(doc_id, source_id)
        except BaseException:
            # Ctrl-C, an embedding or a store error mid-way: take back what was written, then let it propagate.
            if doc_id is None:  # interrupted while its row was recorded: the row may exist, no passage does
                self.catalog.forget_loading(source_id, file.name, digest)
            else:
                self._take_back(collection, doc_id)
            raise
        if retired:
            self.store.delete_documents(collection, retired)
            self.catalog.forget_documents(retired)
        return FileOutcome(file.name, "replaced" if retired else "loaded", len(chunks), len(pages))

    def _take_back(self, collection: str, doc_id: int) -> None:
        try:
            self.store.delete_documents(collection, [doc_id])
        except Exception:  # the store is what failed: the row stays "loading", and the next load removes it
            log.warning("could not remove the passages of an unfinished load yet", exc_info=True)
            return
        self.catalog.forget_documents([doc_id])

    def _read(self, file: InputFile) -> bytes:
        if file.size is not None and file.size > self.max_bytes:
            raise FileRejected(_too_large(file.size, self.max_bytes))
        try:
            data = file.read()
        except OSError as exc:
            raise FileRejected(f"cannot be read: {exc.strerror or exc}") from exc
        if len(data) > self.max_bytes:
            raise FileRejected(_too_large(len(data), self.max_bytes))
        if not data.strip():
            raise FileRejected("the file is empty")
        return data


def _too_large(size: int, limit: int) -> str:
    shown, most = _mb(size), _mb(limit)
    if shown == most:  # just over the limit: megabytes would read as equal
        shown, most = f"{size:,} bytes", f"{limit:,} bytes"
    return f"too large: {shown} (the limit is {most}; set MEMBOT_MAX_FILE_MB to change it)"


def _mb(size: int) -> str:
    mb = size / 1e6
    return f"{mb:.1f} MB" if mb >= 100 else f"{mb:.4g} MB"
