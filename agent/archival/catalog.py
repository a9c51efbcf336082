"""The SQL side of data sources: which sources exist, their files, and which of them are fully loaded.

Several processes load and delete at once, so every change that depends on a source's state first locks its row
(an UPDATE of it: a row lock on PostgreSQL, the write lock on SQLite) and reads after that, never before. A
delete marks the source `deleting` first; from then on no load can add to it, and whoever sees the mark (the
delete itself, a load it interrupted, the next load's recovery) drops its collection and then removes its rows.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from agent.archival.audience import Origin, visible_sql
from agent.db.models import Document, Source, SourceBinding, SourceLoad, as_utc, utcnow
from agent.errors import FileRejected, NotFound
from agent.names import NAME_LIMIT, clean_name, lookup_form, same_name_sql

STALE_AFTER = timedelta(hours=1)  # a loading row older than this on another host is an abandoned load


def owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class SourceDeleted(FileRejected):
    """The source was deleted while a file was loading into it; nothing of that file was kept."""


def _lock(s: Session, source_id: int) -> Source | None:
    """Lock the source's row for the rest of the transaction and read it afresh (None: it is gone)."""
    locked = s.connection().execute(update(Source).where(col(Source.id) == source_id)
                                    .values(deleting=Source.deleting).returning(col(Source.id))).first()
    if locked is None:
        return None
    source = s.get(Source, source_id, populate_existing=True)
    return source


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
    def find(self, scope: str, name: str, place: str | None = None) -> Source | None:
        """The source called `name` in any case ("Report" finds "report"), after the same normalization as
        when it was created; an exact match wins in a database from before names were unique by case. Given a
        place, only a source visible there is found (agent/archival/audience.py)."""
        name = lookup_form(name)
        with Session(self.engine) as s:
            rows: list[Source] = list(s.exec(select(Source).where(Source.scope == scope, visible_sql(Source, place),
                                                                  same_name_sql(Source.name, name))).all())
        return next((r for r in rows if r.name == name), rows[0] if rows else None)

    def get(self, scope: str, name: str, place: str | None = None) -> Source:
        """The ready source called `name`; from a place, one it cannot see is not found (nor hinted at)."""
        source = self.find(scope, name, place)
        if source is None or not source.ready or source.deleting:
            raise NotFound(self.unknown_source_message(scope, name, place))
        return source

    def unknown_source_message(self, scope: str, name: str, place: str | None = None) -> str:
        names = [s.source.name for s in self.summaries(scope, place)]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        if close:
            return f"No source named {name!r}. Did you mean: {', '.join(close)}?"
        if names:
            return f"No source named {name!r}. Sources: {', '.join(sorted(names))}."
        return f"No source named {name!r}: no sources are loaded yet (load one with `membot load`)."

    def open_for_load(self, scope: str, name: str, model: str, dim: int, chunk_tokens: int,
                      origin: Origin | None = None) -> tuple[Source, int]:
        """The source to load into (created if new, with `origin`'s audience) and this load's registration in it,
        in one transaction with the source's row locked, so nothing can remove the source in between. A source
        being deleted is returned as it is (with deleting set, and load id 0): finish its delete, then call
        again."""
        origin = origin or Origin("")
        name = clean_name(name)
        scope = clean_name(scope, "scope")
        for _ in range(5):
            if self.find(scope, name) is None:
                try:  # created and registered in one transaction: no one sees it unregistered
                    with Session(self.engine, expire_on_commit=False) as s:
                        new = Source(scope=scope, name=name, embedding_model=model, embedding_dim=dim,
                                     chunk_tokens=chunk_tokens, audience=origin.audience,
                                     origin_channel=origin.place, uploader=origin.uploader)
                        s.add(new)
                        s.flush()
                        load = SourceLoad(source_id=int(new.id or 0), owner=owner_tag())
                        s.add(load)
                        s.commit()
                        return new, int(load.id or 0)
                except IntegrityError:  # another load created it (or "Report" as "report") in the meantime
                    pass
            with Session(self.engine, expire_on_commit=False) as s:
                found = self.find(scope, name)
                source = _lock(s, int(found.id or 0)) if found is not None else None
                if source is None:  # removed in between (a failed first load, a delete): try again
                    continue
                if source.deleting:
                    return source, 0
                load = SourceLoad(source_id=int(source.id or 0), owner=owner_tag())
                s.add(load)
                s.commit()
                return source, int(load.id or 0)
        raise RuntimeError(f"source {name!r} kept disappearing while a load opened it")

    def open_upload(self, scope: str, stem: str, origin: Origin, model: str, dim: int, chunk_tokens: int
                    ) -> tuple[Source, int]:
        """Open the source for a file uploaded in a place: the place's own source of that file name (a new version
        replaces the old), else a new one named `stem`, or `stem-2`, `stem-3`... when another place (or the CLI)
        has the name. Races are settled by the unique name: whoever creates a name owns it, and a load that finds
        a name taken by another place moves on to the next."""
        own = self.upload_of(scope, stem, origin.place)
        if own is not None:
            return self.open_for_load(scope, own.name, model, dim, chunk_tokens, origin)
        for n in range(1, 1000):
            name = upload_name(stem, n)
            taken = self.find(scope, name)
            if taken is not None and taken.origin_channel != origin.place:
                continue
            source, load_id = self.open_for_load(scope, name, model, dim, chunk_tokens, origin)
            if source.origin_channel == origin.place or not load_id:
                return source, load_id
            self.end_load(load_id)  # another place created this name a moment ago
        raise FileRejected(f"too many sources are named like {stem!r}; rename the file")

    def upload_of(self, scope: str, stem: str, place: str) -> Source | None:
        """The source a place made from files called `stem` (named `stem` or `stem-N`), if any."""
        pattern = re.compile(rf"{re.escape(stem.lower())}(-\d+)?")
        with Session(self.engine) as s:
            rows = s.exec(select(Source).where(Source.scope == scope, Source.origin_channel == place,
                                               func.lower(Source.name).like(_like_prefix(stem.lower()), escape="\\"))
                          .order_by(col(Source.id))).all()
        return next((r for r in rows if place and pattern.fullmatch(r.name.lower())), None)

    def get_or_create(self, scope: str, name: str, model: str, dim: int, chunk_tokens: int) -> Source:
        """The source called `name`, created if new (for callers that write passages themselves, such as
        benchmarks and tests); a load uses open_for_load, which also registers the load."""
        source, load_id = self.open_for_load(scope, name, model, dim, chunk_tokens)
        if load_id:
            self.end_load(load_id)
        return source

    def end_load(self, load_id: int) -> None:
        with Session(self.engine) as s:
            s.exec(delete(SourceLoad).where(col(SourceLoad.id) == load_id))
            s.commit()

    def by_id(self, source_id: int) -> Source | None:
        with Session(self.engine) as s:
            return s.get(Source, source_id)

    def summaries(self, scope: str, place: str | None = None) -> list[SourceSummary]:
        """The ready sources of a scope, with their counts; given a place, only those visible there."""
        with Session(self.engine) as s:
            sources = s.exec(select(Source).where(Source.scope == scope, Source.ready == True,  # noqa: E712
                                                  Source.deleting == False, visible_sql(Source, place))  # noqa: E712
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

    def detail(self, scope: str, name: str) -> tuple[SourceSummary, list[Document]]:
        """One ready source's summary and its files."""
        source = self.get(scope, name)
        return self.summary(source), self.documents(int(source.id or 0))

    def summary(self, source: Source) -> SourceSummary:
        with Session(self.engine) as s:
            files, pages, passages = s.exec(
                select(func.count(), func.sum(Document.page_count), func.sum(Document.passage_count))
                .where(Document.source_id == source.id, Document.status == "ready")).one()
        return SourceSummary(source, int(files or 0), int(pages or 0), int(passages or 0))

    def set_audience(self, source_id: int, audience: str) -> None:
        with Session(self.engine) as s:
            s.exec(update(Source).where(col(Source.id) == source_id).values(audience=audience))  # type: ignore[call-overload]
            s.commit()

    def mark_deleting(self, source_id: int) -> bool:
        """The first step of a delete: from now on no load adds to the source and no one lists it."""
        with Session(self.engine) as s:
            done = s.connection().execute(update(Source).where(col(Source.id) == source_id)
                                          .values(deleting=True).returning(col(Source.id))).first()
            s.commit()
            return done is not None

    def mark_deleting_if_abandoned(self, source_id: int) -> bool:
        """Mark a never-ready source for deletion if nothing is loading into it (no document, no live load);
        decided with its row locked, so a load registering at the same moment either wins or waits."""
        with Session(self.engine) as s:
            source = _lock(s, source_id)
            if source is None or source.ready or source.deleting:
                return False
            has_docs = s.exec(select(exists().where(col(Document.source_id) == source_id))).one()
            loads = s.exec(select(SourceLoad).where(SourceLoad.source_id == source_id)).all()
            live = [load for load in loads if not _owner_gone(load.owner, load.started_at)]
            if has_docs or live:
                return False
            source.deleting = True
            s.add(source)
            s.commit()
            return True

    def deleting(self) -> list[Source]:
        """Sources whose delete was started and not finished (a crash, or a load that raced it)."""
        with Session(self.engine) as s:
            return list(s.exec(select(Source).where(Source.deleting == True)).all())  # noqa: E712

    def remove_deleted(self, source_id: int) -> bool:
        """The last step of a delete (its collection is gone): remove the rows unless a live load is still
        registered in the source. Dead loads' registrations are cleared on the way."""
        with Session(self.engine) as s:
            source = _lock(s, source_id)
            if source is None:
                return True
            assert source.deleting, "mark the source deleting and drop its collection first"
            loads = s.exec(select(SourceLoad).where(SourceLoad.source_id == source_id)).all()
            if any(not _owner_gone(load.owner, load.started_at) for load in loads):
                return False
            self._delete_rows(s, source_id)
            s.commit()
            return True

    def delete_source(self, source_id: int) -> None:
        """Remove a source's rows at once (its collection must be gone already)."""
        with Session(self.engine) as s:
            self._delete_rows(s, source_id)
            s.commit()

    @staticmethod
    def _delete_rows(s: Session, source_id: int) -> None:
        s.exec(delete(SourceBinding).where(col(SourceBinding.source_id) == source_id))
        s.exec(delete(Document).where(col(Document.source_id) == source_id))
        s.exec(delete(SourceLoad).where(col(SourceLoad.source_id) == source_id))
        s.exec(delete(Source).where(col(Source.id) == source_id))

    # documents ---------------------------------------------------------------------------------------
    def documents(self, source_id: int, status: str = "ready") -> list[Document]:
        with Session(self.engine) as s:
            return list(s.exec(select(Document).where(Document.source_id == source_id, Document.status == status)
                               .order_by(Document.file_name)).all())

    def ready_document_ids(self, source_id: int) -> set[int]:
        with Session(self.engine) as s:
            rows = s.exec(select(Document.id).where(Document.source_id == source_id, Document.status == "ready"))
            return {int(r) for r in rows if r is not None}

    def begin_document(self, source_id: int, name: str, digest: str, size: int, pages: int, passages: int,
                       ref: str = "") -> Document:
        """Record a load in progress before any passage is written, so a crash can be cleaned up."""
        with Session(self.engine) as s:
            source = _lock(s, source_id)
            if source is None or source.deleting:
                raise SourceDeleted("its source was deleted while it loaded; nothing was kept")
            doc = Document(source_id=source_id, file_name=name, content_hash=digest, size_bytes=size,
                           page_count=pages, passage_count=passages, status="loading", owner=owner_tag(),
                           file_ref=ref)
            s.add(doc)
            s.commit()
            s.refresh(doc)
            return doc

    def commit_document(self, doc_id: int, source_id: int) -> list[tuple[int, int]]:
        """Make a loaded document visible and retire older versions of the same file, in one transaction.

        Returns the retired documents' (id, passage count): the caller deletes their passages.
        """
        with Session(self.engine) as s:
            # The source's row first: two loads of one file commit one after the other, and the second one
            # sees the first's ready document and retires it (else both could read "none ready" at once).
            source = _lock(s, source_id)
            doc = s.get(Document, doc_id)
            if source is None or source.deleting or doc is None:
                raise SourceDeleted("its source was deleted while it loaded; nothing was kept")
            older = s.exec(select(Document).where(Document.source_id == source_id, Document.status == "ready",
                                                  Document.file_name == doc.file_name,
                                                  col(Document.id) != doc_id)).all()
            for old in older:
                old.status = "replaced"
                s.add(old)
            retired = [(int(o.id or 0), o.passage_count) for o in older]
            s.flush()  # retired before this one is ready: one ready version per file (a unique index)
            doc.status = "ready"
            source.ready = True
            source.revision += 1
            source.updated_at = utcnow()
            s.add(doc)
            s.add(source)
            s.commit()
            return retired

    def retire_file(self, scope: str, ref: str) -> list[tuple[int, int]]:
        """Retire the ready documents of an uploaded file (by the platform's id) in a scope, each with its source's
        row locked and its revision bumped; returns their (source id, document id): the caller deletes the
        passages. A retired document is also cleaned up by the next load's recovery, should the caller crash."""
        if not ref:
            return []
        with Session(self.engine) as s:
            found = s.exec(select(Document.id, Document.source_id)
                           .join(Source, col(Source.id) == col(Document.source_id))
                           .where(Source.scope == scope, Document.file_ref == ref, Document.status == "ready")).all()
            retired = []
            for doc_id, source_id in found:
                source = _lock(s, int(source_id))
                doc = s.get(Document, doc_id)
                if source is None or doc is None or doc.status != "ready":
                    continue
                doc.status = "replaced"
                source.revision += 1
                source.updated_at = utcnow()
                s.add(doc)
                s.add(source)
                retired.append((int(source_id), int(doc_id or 0)))
            s.commit()
            return retired

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
        return [d for d in rows if d.status == "replaced" or (d.owner != me and _owner_gone(d.owner, d.created_at))]

    def unready_sources(self) -> list[int]:
        with Session(self.engine) as s:
            return [int(i) for i in s.exec(select(Source.id).where(Source.ready == False,  # noqa: E712
                                                                   Source.deleting == False)).all()  # noqa: E712
                    if i is not None]


def upload_name(stem: str, n: int) -> str:
    """The n-th name for uploads of files called `stem`: stem, stem-2, stem-3..."""
    if n == 1:
        return stem
    suffix = f"-{n}"
    return stem[: NAME_LIMIT - len(suffix)] + suffix


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _owner_gone(owner: str, since: datetime) -> bool:
    """Whether the process `owner` (host:pid) is gone: asked of the OS on this host; on another, after a while."""
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return utcnow() - as_utc(since) > STALE_AFTER
