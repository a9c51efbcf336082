"""Data sources as a person sees them: list, show, delete and search by name within a scope."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_
from sqlmodel import Session, col, select

from agent.archival.catalog import Catalog, SourceSummary
from agent.archival.deletion import finish_delete, finish_pending
from agent.archival.milvus_store import PassageStore
from agent.archival.search import Searcher, SearchPage, SearchTarget
from agent.db.models import Document, Source
from agent.errors import NotFound
from agent.names import lookup_form, same_name_sql


def source_target(store: PassageStore, source: Source, ready: set[int]) -> SearchTarget:
    """What to search for `source`: its collection, revision and the documents fully loaded. The generation
    (id and creation time) keeps a search cache from serving the passages of a deleted source whose id and
    revision another process reused."""
    sid = int(source.id or 0)
    return SearchTarget(store.source_collection(sid), source.revision, source.name, source.embedding_model,
                        source.embedding_dim, ready, generation=f"{sid}@{source.created_at.isoformat()}")


class Sources:
    def __init__(self, catalog: Catalog, store: PassageStore, searcher: Searcher) -> None:
        self.catalog = catalog
        self.store = store
        self.searcher = searcher

    def summaries(self, scope: str) -> list[SourceSummary]:
        return self.catalog.summaries(scope)

    def show(self, scope: str, name: str) -> tuple[SourceSummary, list[Document]]:
        return self.catalog.detail(scope, name)

    def delete(self, scope: str, name: str) -> SourceSummary:
        """Delete a source, its passages and every agent's binding to it: marked deleting in SQL first, then
        the collection is dropped, then the rows go, so a crash at any point leaves the source or nothing (a
        delete that stopped midway is finished here, or by the next load)."""
        finish_pending(self.catalog, self.store, self.searcher.cache)
        source = self.catalog.get(scope, name)
        summary = self.catalog.summary(source)
        source_id = int(source.id or 0)
        if not self.catalog.mark_deleting(source_id):
            raise NotFound(self.catalog.unknown_source_message(scope, name))
        finish_delete(self.catalog, self.store, source_id, self.searcher.cache)
        return summary

    def forget_file(self, scope: str, ref: str) -> list[str]:
        """Remove the documents of an uploaded file that was deleted on its platform; a source left with no file
        goes too. Returns the names of the sources it was in."""
        names = []
        for source_id, doc_id in self.catalog.retire_file(scope, ref):
            self.store.delete_documents(self.store.source_collection(source_id), [doc_id])
            self.catalog.forget_documents([doc_id])
            source = self.catalog.by_id(source_id)
            if source is None:
                continue
            names.append(source.name)
            if not self.catalog.ready_document_ids(source_id) and self.catalog.mark_deleting(source_id):
                finish_delete(self.catalog, self.store, source_id, self.searcher.cache)
        return names

    def target(self, source: Source, ready: set[int] | None = None) -> SearchTarget:
        """What to search for `source`: its collection, revision and the documents fully loaded (read from SQL
        unless given)."""
        if ready is None:
            ready = self.catalog.ready_document_ids(int(source.id or 0))
        return source_target(self.store, source, ready)

    def targets(self, scope: str, names: Sequence[str]) -> list[SearchTarget]:
        """Targets for several sources by name, in two SQL queries (one session) whatever their number: this runs
        on every search, where one session per source cost more than the search itself."""
        wanted = list(dict.fromkeys(lookup_form(n) for n in names))
        with Session(self.catalog.engine) as s:
            rows = list(s.exec(select(Source).where(Source.scope == scope, Source.ready == True,  # noqa: E712
                                                    or_(*(same_name_sql(Source.name, n) for n in wanted)))))
            found = {n: src for n in wanted if (src := _pick(rows, n)) is not None}
            missing = [n for n in wanted if n not in found]
            ids = [int(found[n].id or 0) for n in wanted if n in found]
            ready: dict[int, set[int]] = {i: set() for i in ids}
            if ids and not missing:
                rows = s.exec(select(Document.id, Document.source_id)
                              .where(col(Document.source_id).in_(ids), Document.status == "ready"))
                for doc_id, source_id in rows:
                    ready[int(source_id)].add(int(doc_id or 0))
        if missing:
            raise NotFound(self.catalog.unknown_source_message(scope, missing[0]))
        return [self.target(found[n], ready[int(found[n].id or 0)]) for n in wanted]

    def prepare(self, scope: str, names: Sequence[str]) -> None:
        """After a load: the sources' snapshots, so that the next `membot search` opens no Milvus."""
        self.searcher.prepare(self.targets(scope, names))

    def search(self, scope: str, names: Sequence[str], query: str, k: int = 5, page: int = 1,
               mode: str = "hybrid") -> SearchPage:
        return self.searcher.search(self.targets(scope, names), query, k=k, page=page, mode=mode)


def _pick(rows: list[Source], name: str) -> Source | None:
    """The row the database matched for `name`: the exact name first, then one equal but for case."""
    exact = next((r for r in rows if r.name == name), None)
    return exact or next((r for r in rows if r.name.lower() == name.lower()), None)
