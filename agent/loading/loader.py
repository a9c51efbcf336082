"""Loading files into a source, atomically per file: a file is visible fully loaded, or not at all."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence, Set
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.archival.audience import CHANNEL, Origin
from agent.archival.catalog import Catalog, SourceDeleted
from agent.archival.deletion import finish_delete, finish_pending
from agent.archival.milvus_store import PassageRow, PassageStore, now_ms, passage_id
from agent.db.models import Source
from agent.embeddings.base import Embedder
from agent.embeddings.models import how_to_use
from agent.errors import EmbeddingMismatch, FileRejected
from agent.loading.chunker import Chunk, chunk_pages
from agent.loading.inputs import InputFile
from agent.loading.parser import InProcessParser, Parser
from agent.loading.pipeline import ReadAhead, embed_and_store
from agent.names import FILE_NAME_LIMIT, clean_file_name, clean_name, display
from agent.stopping import StopRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileOutcome:
    name: str
    status: str  # loaded | replaced | unchanged | failed
    passages: int = 0
    documents: int = 0
    reason: str = ""
    before: int = 0  # passages of the version it replaced


@dataclass(frozen=True)
class Prepared:
    """A file read and parsed ahead of its turn; `chunks` is None when its content looked loaded already."""

    data: bytes | None  # kept only while unparsed
    size: int
    digest: str
    pages: int
    chunks: list[Chunk] | None


@dataclass
class LoadReport:
    source: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    asked: str = ""  # the name asked for, when the source got another (an upload whose name another place has)
    audience: str = "workspace"

    @property
    def passages(self) -> int:
        return sum(o.passages for o in self.outcomes if o.status in ("loaded", "replaced"))

    @property
    def documents(self) -> int:
        return sum(o.documents for o in self.outcomes if o.status in ("loaded", "replaced"))

    @property
    def channel_only(self) -> bool:
        """Whether only the channel it was uploaded in sees the source."""
        return self.audience == CHANNEL

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

    def load(self, scope: str, name: str, files: Sequence[InputFile], progress: LoadProgress | None = None,
             origin: Origin | None = None, stop: StopRequest | None = None) -> LoadReport:
        """Load `files` into the source `name`; for an upload (`origin` given), `name` is the file's stem and
        the source is the origin place's own of that name (see Catalog.open_upload): the report says which.
        A `stop` is honoured between files and embedded slices, with the unfinished file taken back."""
        stop = stop or StopRequest()
        progress = progress or LoadProgress()
        name = clean_name(name)  # before anything is written: a bad name is refused with its reason
        self.recover()
        source, load_id = self._open(scope, name, origin)
        # The existing source's spelling when the case differs; an upload's own name when another place has it.
        report = LoadReport(source.name, asked=name if origin is not None else "", audience=source.audience)
        known = {d.content_hash for d in self.catalog.documents(int(source.id or 0))}
        try:
            # The first file is read and parsed while the source is checked (which opens Milvus, a second on
            # Milvus Lite), and the next one while this one embeds (agent/loading/pipeline.py). Parsing writes
            # nothing, so a check that fails only drops what was read ahead.
            with ReadAhead(files, lambda f: self._prepare(f, known)) as ahead:
                self._check(source)
                for file, prepared in ahead:
                    stop.check()
                    outcome = self._load_one(source, file, prepared, progress, stop)
                    report.outcomes.append(outcome)
                    progress.file_finished(outcome)
        finally:
            self.catalog.end_load(load_id)
            self._settle(int(source.id or 0))
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
        finish_pending(self.catalog, self.store)
        for source_id in self.catalog.unready_sources():
            self._settle(source_id)

    def _open(self, scope: str, name: str, origin: Origin | None) -> tuple[Source, int]:
        """The source and this load's registration in it; a delete of that name left unfinished is finished."""
        model, dim = self.embedder.model, self.embedder.dim
        for _ in range(3):
            if origin is None:
                source, load_id = self.catalog.open_for_load(scope, name, model, dim, self.chunk_tokens)
            else:
                source, load_id = self.catalog.open_upload(scope, name, origin, model, dim, self.chunk_tokens)
            if load_id:
                return source, load_id
            finish_delete(self.catalog, self.store, int(source.id or 0))
        raise SourceDeleted(f"source {name!r} is being deleted by another process; load it again in a moment")

    def _check(self, source: Source) -> None:
        model, dim = self.embedder.model, self.embedder.dim
        name = source.name
        if (source.embedding_model, source.embedding_dim) != (model, dim):
            raise EmbeddingMismatch(
                f"Source {name!r} holds passages embedded with {source.embedding_model} ({source.embedding_dim} "
                f"dimensions); the configured model is {model} ({dim}). Load into a new source name, or "
                f"{how_to_use(source.embedding_model)}."
            )
        if not source.ready and not self.catalog.documents(int(source.id or 0), "loading"):
            # A new source starts from an empty collection, whatever an earlier crash left under its id.
            self.store.drop(self.store.source_collection(int(source.id or 0)))

    def _settle(self, source_id: int) -> None:
        """After a load: finish a delete that ran meanwhile; remove a new source none of whose files loaded,
        unless another load is still filling it (decided in SQL with the source's row locked)."""
        fresh = self.catalog.by_id(source_id)
        if fresh is None:
            return
        if fresh.deleting or (not fresh.ready and self.catalog.mark_deleting_if_abandoned(source_id)):
            finish_delete(self.catalog, self.store, source_id)

    def _load_one(self, source: Source, file: InputFile, prepared: Future[Prepared], progress: LoadProgress,
                  stop: StopRequest) -> FileOutcome:
        shown = display(file.name)[:FILE_NAME_LIMIT]
        try:
            file = dataclasses.replace(file, name=clean_file_name(file.name))
            return self._load_file(source, file, prepared.result(), progress, stop)
        except FileRejected as exc:
            return FileOutcome(shown, "failed", reason=str(exc))
        except (MemoryError, OSError) as exc:
            return FileOutcome(shown, "failed", reason=f"{exc.__class__.__name__}: {exc}")

    def _prepare(self, file: InputFile, known: Set[str]) -> Prepared:
        """Read, hash and parse a file (on the read-ahead thread); a file whose content is known is not parsed."""
        data = self._read(file)
        digest = hashlib.sha256(data).hexdigest()
        return Prepared(data, len(data), digest, 0, None) if digest in known else self._parse(file, data, digest)

    def _parse(self, file: InputFile, data: bytes, digest: str) -> Prepared:
        pages = self.parser.parse(file.name, data)
        numbered = Path(file.name).suffix.lower() == ".pdf"
        chunks = chunk_pages(pages, self.embedder.tokens, self.chunk_tokens, self.chunk_overlap, numbered)
        if not chunks:
            hint = " (a scanned PDF needs OCR first)" if numbered else ""
            raise FileRejected(f"no text could be extracted{hint}")
        return Prepared(None, len(data), digest, len(pages), chunks)

    def _load_file(self, source: Source, file: InputFile, prepared: Prepared, progress: LoadProgress,
                   stop: StopRequest) -> FileOutcome:
        digest = prepared.digest
        known = self.catalog.documents(int(source.id or 0))
        same = next((d for d in known if d.content_hash == digest), None)
        if same is not None:
            why = "already loaded" if same.file_name == file.name else f"same content as {same.file_name}"
            return FileOutcome(file.name, "unchanged", reason=f"{why}; nothing added")
        if prepared.chunks is None:  # its content was loaded when it was read ahead, and is gone now
            prepared = self._parse(file, prepared.data or b"", digest)
        chunks = prepared.chunks or []
        source_id = int(source.id or 0)
        collection = self.store.source_collection(source_id)
        doc_id: int | None = None
        try:
            # Recorded before the slow part, so a crash at any point leaves a row that says whose load it was.
            doc_id = int(self.catalog.begin_document(source_id, file.name, digest, prepared.size, prepared.pages,
                                                     len(chunks), file.ref).id or 0)
            progress.file_started(file.name, len(chunks))
            self.store.ensure(collection, self.embedder.dim, self.embedder.model)
            self._embed_and_store(collection, source_id, doc_id, file.name, chunks, progress, stop)
            stop.check()  # the last moment a stop takes this file back
            retired = self.catalog.commit_document(doc_id, source_id)
        except BaseException:
            # Ctrl-C, an embedding or a store error mid-way: take back what was written, then let it propagate.
            if doc_id is None:  # interrupted while its row was recorded: the row may exist, no passage does
                self.catalog.forget_loading(source_id, file.name, digest)
            else:
                self._take_back(collection, doc_id)
            raise
        if retired:
            ids = [doc for doc, _ in retired]
            self.store.delete_documents(collection, ids)
            self.catalog.forget_documents(ids)
        return FileOutcome(file.name, "replaced" if retired else "loaded", len(chunks), prepared.pages,
                           before=sum(count for _, count in retired))

    def _embed_and_store(self, collection: str, source_id: int, doc_id: int, name: str, chunks: list[Chunk],
                         progress: LoadProgress, stop: StopRequest) -> None:
        stamp = now_ms()

        def store(first: int, vectors: np.ndarray) -> None:
            part = chunks[first : first + len(vectors)]
            self.store.insert(collection, [PassageRow(passage_id(doc_id, c.index), v, c.text, doc_id, name, c.page,
                                                      c.index, stamp, source_id=source_id)
                                           for c, v in zip(part, vectors)])

        embed_and_store(self.embedder, [c.text for c in chunks], store, progress.advanced, stop=stop)

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
