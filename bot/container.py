"""The composition root: builds the stores, the embedder and the services once, and closes them."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cached_property
from types import TracebackType

from sqlalchemy.engine import Engine

from agent.archival.catalog import Catalog
from agent.archival.index import IndexCache
from agent.archival.milvus_store import PassageStore
from agent.archival.search import Searcher
from agent.archival.sources import Sources
from agent.embeddings.base import Embedder
from agent.loading.loader import Loader
from bot.settings import Settings


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedding_provider == "openai":
        from agent.embeddings.remote import OpenAIEmbedder

        return OpenAIEmbedder(settings.embedding_model, settings.openai_api_key, settings.openai_base_url,
                              settings.embedding_batch_size)
    from agent.embeddings.local import LocalEmbedder

    return LocalEmbedder(settings.embedding_model, settings.embedding_batch_size)


class Container(AbstractContextManager["Container"]):
    """Everything is built lazily on first use, so a command opens only what it needs."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder

    @cached_property
    def engine(self) -> Engine:
        from agent.db.engine import open_engine

        return open_engine(self.settings.database_url)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.engine)

    @cached_property
    def passages(self) -> PassageStore:
        return PassageStore(self.settings.milvus_uri)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings)
        return self._embedder

    @cached_property
    def searcher(self) -> Searcher:
        return Searcher(IndexCache(self.passages, self.settings.search_cache_rows), lambda: self.embedder)

    @cached_property
    def sources(self) -> Sources:
        return Sources(self.catalog, self.passages, self.searcher)

    @cached_property
    def loader(self) -> Loader:
        s = self.settings
        return Loader(self.catalog, self.passages, self.embedder, s.chunk_tokens, s.chunk_overlap,
                      int(s.max_file_mb * 1_000_000))

    def close(self) -> None:
        if "passages" in self.__dict__:
            self.passages.close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
