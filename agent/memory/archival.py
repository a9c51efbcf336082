"""Archival memory: the agent's own saved passages plus every source attached to it, searched as one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import case, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from agent.archival.audience import place_of_agent, visible_sql
from agent.archival.catalog import Catalog
from agent.archival.milvus_store import PassageRow, PassageStore, now_ms, passage_id
from agent.archival.search import Searcher, SearchPage, SearchTarget
from agent.archival.sources import source_target
from agent.db.models import Agent, Source, SourceBinding
from agent.embeddings.base import Embedder
from agent.errors import ToolFailure, UserError
from agent.loading.chunker import chunk_pages

OWN = "archival memory"
PER_PAGE = 5


def attached_sources(session: Session, agent_id: int) -> list[Source]:
    """The sources attached to an agent that its place can still see: a binding to a source whose audience no
    longer includes the agent's channel is kept, but neither listed nor searched."""
    agent = session.get(Agent, agent_id)
    if agent is None:
        return []
    rows = session.exec(select(Source).join(SourceBinding, col(SourceBinding.source_id) == col(Source.id))
                        .where(SourceBinding.agent_id == agent_id, Source.scope == agent.scope,
                               visible_sql(Source, place_of_agent(agent.name))).order_by(Source.name)).all()
    return list(rows)


@dataclass
class ArchivalMemory:
    """Archival access for one agent within one turn; it remembers what it wrote so a failed turn can undo it."""

    session: Session
    agent: Agent
    store: PassageStore
    searcher: Searcher
    catalog: Catalog
    embedder: Callable[[], Embedder]
    written: list[int] = field(default_factory=list)  # document ids inserted this turn

    @property
    def collection(self) -> str:
        return self.store.agent_collection(int(self.agent.id or 0))

    def insert(self, content: str) -> str:
        if not content.strip():
            raise ToolFailure("archival_memory_insert needs non-empty content.")
        embedder = self.embedder()
        self._check_model(embedder)
        size = max(16, embedder.max_tokens - 2)
        chunks = chunk_pages([content], embedder.tokens, size, min(20, size // 4), numbered=False)
        vectors = embedder.embed([c.text for c in chunks])
        doc = self._reserve(embedder)
        stamp = now_ms()
        rows = [PassageRow(passage_id(doc, c.index), v, c.text, doc, "", 0, c.index, stamp,
                           agent_id=int(self.agent.id or 0)) for c, v in zip(chunks, vectors)]
        self.store.ensure(self.collection, embedder.dim, embedder.model)
        self.store.insert(self.collection, rows)
        self.written.append(doc)
        return f"Saved to archival memory ({len(rows)} passage{'s' if len(rows) != 1 else ''})."

    def undo(self) -> None:
        if self.written:
            self.store.delete_documents(self.collection, self.written)
            self.searcher.cache.invalidate(self.collection)
            self.written.clear()

    def targets(self, source: str | None = None) -> list[SearchTarget]:
        sources = attached_sources(self.session, int(self.agent.id or 0))
        own = SearchTarget(self.collection, self.agent.archival_revision, OWN, self.agent.embedding_model,
                           self.agent.embedding_dim, None,
                           generation=f"agent{self.agent.id}@{self.agent.created_at.isoformat()}")
        if source is None:
            return [own] + [self._target(s) for s in sources]
        if source.lower() in (OWN, "memory", "own"):
            return [own]
        chosen = [s for s in sources if s.name == source]
        if not chosen:
            names = ", ".join([OWN] + [s.name for s in sources])
            raise ToolFailure(f"No attached source named {source!r}. You can search: {names}.")
        return [self._target(chosen[0])]

    def search(self, query: str, page: int, source: str | None = None) -> SearchPage:
        try:
            return self.searcher.search(self.targets(source), query, k=PER_PAGE, page=max(1, page or 1))
        except UserError as exc:
            raise ToolFailure(str(exc)) from exc

    def count(self) -> int:
        return self.store.count(self.collection)

    def _target(self, source: Source) -> SearchTarget:
        return source_target(self.store, source, self.catalog.ready_document_ids(int(source.id or 0)))

    def _reserve(self, embedder: Embedder) -> int:
        """Record the agent's embedding model and take the next document id in a short transaction of its own,
        committed before anything goes into Milvus: a turn that fails or is killed after the insert still leaves
        the agent searchable, and two writers never get the same id."""
        agent_id = int(self.agent.id or 0)
        table = Agent.__table__  # type: ignore[attr-defined]
        stmt = (update(table).where(table.c.id == agent_id)
                .values(archival_revision=table.c.archival_revision + 1,
                        embedding_model=case((table.c.embedding_model == "", embedder.model),
                                             else_=table.c.embedding_model),
                        embedding_dim=case((table.c.embedding_model == "", embedder.dim),
                                           else_=table.c.embedding_dim))
                .returning(table.c.archival_revision, table.c.embedding_model, table.c.embedding_dim))
        with Session(self.session.get_bind()) as own:
            row = own.execute(stmt).one()
            own.commit()
        for name, value in zip(("archival_revision", "embedding_model", "embedding_dim"), row):
            set_committed_value(self.agent, name, value)
        self._check_model(embedder)  # another process may have recorded a different model meanwhile
        return int(row[0])

    def _check_model(self, embedder: Embedder) -> None:
        stored = (self.agent.embedding_model, self.agent.embedding_dim)
        if self.agent.embedding_model and stored != (embedder.model, embedder.dim):
            raise ToolFailure(f"Archival memory was embedded with {self.agent.embedding_model}; the configured "
                              f"model is {embedder.model}, so new memories cannot be added to it.")


def format_page(result: SearchPage) -> str:
    if result.total == 0:
        return f"No archival results for {result.query!r}."
    if not result.hits:
        return f"Page {result.page} is past the end: {result.total_text} results in {result.pages_text} page(s)."
    first = (result.page - 1) * result.per_page
    lines = [f"Showing {first + 1}-{first + len(result.hits)} of {result.total_text} results "
             f"(page {result.page}/{result.pages_text}):"]
    for n, hit in enumerate(result.hits, start=first + 1):
        where = hit.label
        if hit.file_name:
            where += f", {hit.file_name}" + (f" page {hit.page}" if hit.page else "")
        stamp = hit.inserted_at.strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"[{n}] ({where}; inserted {stamp}) {hit.text}")
    return "\n".join(lines)
