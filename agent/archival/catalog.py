"""The SQL side of data sources: which sources exist, their files, and which of them are fully loaded."""

from __future__ import annotations

import difflib
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from agent.db.models import Document, Source, SourceBinding, as_utc, utcnow
from agent.errors import NotFound
from agent.names import clean_name, lookup_form, same_name_sql

STALE_AFTER = timedelta(hours=1)  # a loading row older than this on another host is an abandoned load


def owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class SourceSummary:
    source: Source
    files: int
    documents: int  # pages, as the original counted them
    passages: int


class Catalog:
    """Sources and documents in SQL. Every method opens and closes its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # sources -----------------------------------------------------------------------------------------
    def find(self, scope: str, name: str) -> Source | None:
        """The source called `name` in any case ("Report" finds "report"), after the same normalization as
        when it was created; an exact match wins in a database from before names were unique by case."""
        name = lookup_form(name)
        with Session(self.engine) as s:
            rows: list[Source] = list(s.exec(select(Source).where(Source.scope == scope,
                                                                  same_name_sql(Source.name, name))).all())
        return next((r for r in rows if r.name == name), rows[0] if rows else None)

    def get(self, scope: str, name: str) -> Source:
        source = self.find(scope, name)
        if source is None or not source.ready:
            raise NotFound(self.unknown_source_message(scope, name))
        return source

    def unknown_source_message(self, scope: str, name: str) -> str:
        names = [s.source.name for s in self.summaries(scope)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        if close:
            return f"No source named {name!r}. Did you mean: {', '.join(close)}?"
        if names:
            return f"No source named {name!r}. Sources: {', '.join(sorted(names))}."
        return f"No source named {name!r}: no sources are loaded yet (load one with `membot load`)."

    def get_or_create(self, scope: str, name: str, model: str, dim: int, chunk_tokens: int) -> Source:
        name = clean_name(name)
        scope = clean_name(scope, "scope")
        existing = self.find(scope, name)
        if existing is not None:
            return existing
        try:
            with Session(self.engine) as s:
                source = Source(scope=scope, name=name, embedding_model=model, embedding_dim=dim,
                                chunk_tokens=chunk_tokens)
                s.add(source)
                s.commit()
                s.refresh(source)
                return source
        except IntegrityError:  # another load created it (or "Report" as "report") in the meantime
            existing = self.find(scope, name)
            if existing is None:
                raise
            return existing

    def by_id(self, source_id: int) -> Source | None:
        with Session(self.engine) as s:
            return s.get(Source, source_id)

    def summaries(self, scope: str) -> list[SourceSummary]:
        with Session(self.engine) as s:
            sources = s.exec(select(Source).where(Source.scope == scope, Source.ready == True)  # noqa: E712
                             .order_by(Source.name)).all()
            counts = dict(
                (row[0], row[1:])
                for row in s.exec(
                    select(Document.source_id, func.count(), func.sum(Document.page_count),
                           func.sum(Document.passage_count))
                    .where(Document.status == "ready").group_by(Document.source_id)
                ).all()
            )
        return [SourceSummary(src, *(int(v or 0) for v in counts.get(src.id, (0, 0, 0)))) for src in sources]

    def summary(self, source: Source) -> SourceSummary:
        return next(s for s in self.summaries(source.scope) if s.source.id == source.id)

    def delete_source(self, source_id: int) -> None:
        with Session(self.engine) as s:
            s.exec(delete(SourceBinding).where(col(SourceBinding.source_id) == source_id))
            s.exec(delete(Document).where(col(Document.source_id) == source_id))
            s.exec(delete(Source).where(col(Source.id) == source_id))
            s.commit()

    # documents ---------------------------------------------------------------------------------------
    def documents(self, source_id: int, status: str = "ready") -> list[Document]:
        with Session(self.engine) as s:
            return list(s.exec(select(Document).where(Document.source_id == source_id, Document.status == status)
                               .order_by(Document.file_name)).all())

    def ready_document_ids(self, source_id: int) -> set[int]:
        with Session(self.engine) as s:
            rows = s.exec(select(Document.id).where(Document.source_id == source_id, Document.status == "ready"))
            return {int(r) for r in rows if r is not None}

    def begin_document(self, source_id: int, name: str, digest: str, size: int, pages: int, passages: int
                       ) -> Document:
        """Record a load in progress before any passage is written, so a crash can be cleaned up."""
        with Session(self.engine) as s:
            doc = Document(source_id=source_id, file_name=name, content_hash=digest, size_bytes=size,
                           page_count=pages, passage_count=passages, status="loading", owner=owner_tag())
            s.add(doc)
            s.commit()
            s.refresh(doc)
            return doc

    def commit_document(self, doc_id: int, source_id: int) -> list[int]:
        """Make a loaded document visible and retire older versions of the same file, in one transaction.

        Returns the ids of the retired documents, whose passages the caller then deletes.
        """
        with Session(self.engine) as s:
            doc = s.get(Document, doc_id)
            source = s.get(Source, source_id)
            assert doc is not None and source is not None
            older = s.exec(select(Document).where(Document.source_id == source_id, Document.status == "ready",
                                                  Document.file_name == doc.file_name)).all()
            for old in older:
                old.status = "replaced"
                s.add(old)
            doc.status = "ready"
            source.ready = True
            source.revision += 1
            source.updated_at = utcnow()
            s.add(doc)
            s.add(source)
            s.commit()
            return [int(o.id) for o in older if o.id is not None]

    def forget_documents(self, doc_ids: list[int]) -> None:
        if doc_ids:
            with Session(self.engine) as s:
                s.exec(delete(Document).where(col(Document.id).in_(doc_ids)))
                s.commit()

    def forget_loading(self, source_id: int, name: str, digest: str) -> None:
        """Remove this process's unfinished record of a file (when interrupted before it knew the row's id)."""
        with Session(self.engine) as s:
            s.exec(delete(Document).where(col(Document.source_id) == source_id, col(Document.file_name) == name,
                                          col(Document.content_hash) == digest, col(Document.status) == "loading",
                                          col(Document.owner) == owner_tag()))
            s.commit()

    def abandoned(self) -> list[Document]:
        """Documents whose passages must go: retired versions, and loads whose process is gone."""
        with Session(self.engine) as s:
            rows = s.exec(select(Document).where(col(Document.status).in_(["loading", "replaced"]))).all()
        me = owner_tag()
        return [d for d in rows if d.status == "replaced" or (d.owner != me and _owner_gone(d))]

    def empty_unready_sources(self, emptied: set[int]) -> list[Source]:
        """Sources whose first load never finished and that hold no document any more: those whose abandoned
        documents were just removed (`emptied`), and any left for longer than STALE_AFTER.

        A brand-new source also has no document while its first file is read and chunked, so an empty source
        is not taken for abandoned on that alone.
        """
        with Session(self.engine) as s:
            busy = select(Document.source_id).distinct()
            empty = s.exec(select(Source).where(Source.ready == False,  # noqa: E712
                                                col(Source.id).not_in(busy))).all()
        now = utcnow()
        return [src for src in empty if src.id in emptied or now - as_utc(src.created_at) > STALE_AFTER]


def _owner_gone(doc: Document) -> bool:
    host, _, pid = doc.owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return utcnow() - as_utc(doc.created_at) > STALE_AFTER
