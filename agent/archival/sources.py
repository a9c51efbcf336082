"""Data sources as a person sees them: list, show, delete and search by name within a scope."""

from __future__ import annotations

from collections.abc import Sequence

from agent.archival.catalog import Catalog, SourceSummary
from agent.archival.milvus_store import PassageStore
from agent.archival.search import Searcher, SearchPage, SearchTarget
from agent.db.models import Document, Source


class Sources:
    def __init__(self, catalog: Catalog, store: PassageStore, searcher: Searcher) -> None:
        self.catalog = catalog
        self.store = store
        self.searcher = searcher

    def summaries(self, scope: str) -> list[SourceSummary]:
        return self.catalog.summaries(scope)

    def show(self, scope: str, name: str) -> tuple[SourceSummary, list[Document]]:
        source = self.catalog.get(scope, name)
        return self.catalog.summary(source), self.catalog.documents(int(source.id or 0))

    def delete(self, scope: str, name: str) -> SourceSummary:
        """Delete a source, its passages and every agent's binding to it."""
        source = self.catalog.get(scope, name)
        summary = self.catalog.summary(source)
        # Passages first: a crash after this leaves a source that searches empty, never stray passages.
        collection = self.store.source_collection(int(source.id or 0))
        self.store.drop(collection)
        self.searcher.cache.invalidate(collection)
        self.catalog.delete_source(int(source.id or 0))
        return summary

    def target(self, source: Source) -> SearchTarget:
        sid = int(source.id or 0)
        return SearchTarget(self.store.source_collection(sid), source.revision, source.name,
                            source.embedding_model, source.embedding_dim, self.catalog.ready_document_ids(sid),
                            generation=f"{sid}@{source.created_at.isoformat()}")

    def search(self, scope: str, names: Sequence[str], query: str, k: int = 5, page: int = 1,
               mode: str = "hybrid") -> SearchPage:
        targets = [self.target(self.catalog.get(scope, n)) for n in dict.fromkeys(names)]
        return self.searcher.search(targets, query, k=k, page=page, mode=mode)
