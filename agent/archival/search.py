"""Hybrid archival search: exact vector similarity fused with BM25, with true totals and page counts."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from agent.archival.index import CollectionIndex, IndexCache
from agent.archival.keyword import bm25_scores
from agent.embeddings.base import Embedder
from agent.embeddings.models import how_to_use
from agent.errors import EmbeddingMismatch, UserError

DENSE_WEIGHT = 0.6  # the keyword side gets the rest; an exact identifier match dominates the keyword side
MIN_SIMILARITY = 0.2  # below this cosine a passage without a keyword match is not counted as a result
MODES = ("hybrid", "dense", "keyword")


LITE_MODE = "Milvus Lite: exact vector search + BM25, in this process"


@dataclass(frozen=True)

class SearchTarget:
    """One collection to search: a source, or an agent's own archival memory."""

    collection: str
    revision: int
    label: str
    model: str
    dim: int
    visible: set[int] | None = None  # document ids that are fully loaded; None: every row
    generation: str = ""  # tells apart two sources that reuse one id (SQLite reuses a deleted row's id)


@dataclass  # not frozen: a frozen dataclass takes several times longer to build, and a search builds k of them
class Hit:
    text: str
    score: float
    similarity: float
    keyword: float
    label: str
    file_name: str
    page: int
    chunk_index: int
    passage_id: int
    inserted_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "score": round(self.score, 4), "similarity": round(self.similarity, 4),
            "keyword": round(self.keyword, 4), "source": self.label, "file": self.file_name,
            "page": self.page or None, "chunk": self.chunk_index, "id": self.passage_id,
            "inserted_at": self.inserted_at.isoformat(), "text": self.text,
        }


@dataclass(frozen=True)
class SearchPage:
    query: str
    hits: list[Hit]
    total: int
    page: int
    pages: int
    per_page: int
    mode: str = "hybrid"
    searched: int = 0  # passages looked at
    notes: list[str] = field(default_factory=list)
    at_least: bool = False  # an ANN search stopped at its candidate limit: `total` is a lower bound

    @property
    def total_text(self) -> str:
        return f"at least {self.total}" if self.at_least else str(self.total)

    @property
    def pages_text(self) -> str:
        return f"at least {self.pages}" if self.at_least else str(self.pages)

    def as_dict(self) -> dict[str, object]:
        return {"query": self.query, "mode": self.mode, "total": self.total, "page": self.page,
                "pages": self.pages, "per_page": self.per_page, "searched": self.searched,
                "total_is_lower_bound": self.at_least, "results": [h.as_dict() for h in self.hits]}


class RemoteSearch(Protocol):
    """Search that runs inside a Milvus server (agent/archival/server_search.py)."""

    def search(self, targets: Sequence[SearchTarget], query: str, k: int, page: int, mode: str,
               vector: np.ndarray | None) -> SearchPage: ...

    def describe(self) -> str: ...


class Searcher:
    """Exact search in process over the rows read from Milvus Lite, or, given `remote`, search inside a Milvus
    server: the same targets, modes, pages and checks either way."""

    def __init__(self, cache: IndexCache, embedder: Callable[[], Embedder], remote: RemoteSearch | None = None
                 ) -> None:
        self.cache = cache
        self._embedder = embedder  # a factory: the model loads only when a search needs it
        self.remote = remote

    @property
    def mode(self) -> str:
        """Where and how searches run, for `membot sources show`."""
        if self.remote is not None:
            return self.remote.describe()
        return LITE_MODE

    def search(self, targets: Sequence[SearchTarget], query: str, k: int = 5, page: int = 1,
               mode: str = "hybrid") -> SearchPage:
        if mode not in MODES:
            raise UserError(f"Unknown search mode {mode!r}; use one of {', '.join(MODES)}.")
        if k < 1 or page < 1:
            raise UserError("The page size (-k) and page number must be 1 or more.")
        if not query.strip():
            raise UserError("The search query is empty.")
        targets = list({t.collection: t for t in targets}.values())  # a source named twice is searched once
        if self.remote is not None:
            return self._remote(self.remote, targets, query, k, page, mode)
        indexes = [self.cache.get(t.collection, (t.revision, t.generation), t.visible, persist=bool(t.generation))
                   for t in targets]
        indexes, targets = _non_empty(indexes, targets)
        searched = sum(ix.size for ix in indexes)
        if not indexes:
            return SearchPage(query, [], 0, page, 0, k, mode, 0)
        # Only collections with passages are checked: an empty one records no model yet.
        embedder = self._checked_embedder(targets) if mode != "keyword" else None
        similarity = _similarity(embedder, indexes, query) if embedder is not None else None
        keyword = np.concatenate(bm25_scores([ix.keywords for ix in indexes], query)) if mode != "dense" else None
        score, relevant = _fuse(similarity, keyword, mode)
        candidates = None if relevant is None else np.flatnonzero(relevant)
        total = len(score) if candidates is None else len(candidates)
        pages = math.ceil(total / k)
        wanted = min(page * k, total)
        rows = _top(candidates, score, wanted)[(page - 1) * k : page * k]
        hits = _hits(indexes, targets, rows, score, similarity, keyword)
        return SearchPage(query, hits, total, page, pages, k, mode, searched)

    def prepare(self, targets: Sequence[SearchTarget]) -> None:
        """Leave what a new process needs to search `targets` quickly: their snapshots on local disk (Milvus
        Lite; a server searches inside Milvus and needs none)."""
        if self.remote is None:
            for t in targets:
                if t.generation:
                    self.cache.persist(t.collection, (t.revision, t.generation))

    def _remote(self, remote: RemoteSearch, targets: list[SearchTarget], query: str, k: int, page: int,
                mode: str) -> SearchPage:
        stored = [t for t in targets if t.model]  # an agent that never saved a memory has no vectors yet
        vector = None
        if mode != "keyword" and stored:
            embedder = self._checked_embedder(stored)
            vector = np.asarray(embedder.embed([query])[0], dtype=np.float32)
        return remote.search(stored, query, k, page, mode, vector)

    def _checked_embedder(self, targets: Sequence[SearchTarget]) -> Embedder:
        """The query embedder, once every target is known to hold vectors of the same model."""
        embedder = self._embedder()
        for t in targets:
            if t.model != embedder.model or t.dim != embedder.dim:
                raise EmbeddingMismatch(
                    f"{t.label} was embedded with {t.model} ({t.dim} dimensions) but the configured model is "
                    f"{embedder.model} ({embedder.dim} dimensions); vectors from two models cannot be compared. "
                    f"To search it, {how_to_use(t.model)}, or load it again under the new model."
                )
        return embedder


def _similarity(embedder: Embedder, indexes: list[CollectionIndex], query: str) -> np.ndarray:
    q = np.asarray(embedder.embed([query])[0], dtype=np.float32)
    for ix in indexes:
        if ix.data.vectors.shape[1:] != q.shape:
            raise EmbeddingMismatch(
                f"The query vector of {embedder.model} has {q.shape[-1] if q.ndim else 0} dimensions but the stored "
                f"passages have {ix.data.vectors.shape[-1]}; vectors from two models cannot be compared."
            )
    return np.concatenate([ix.data.vectors @ q for ix in indexes])


def _fuse(similarity: np.ndarray | None, keyword: np.ndarray | None, mode: str
          ) -> tuple[np.ndarray, np.ndarray | None]:
    """The score of every row, and which rows count as results (None: all of them)."""
    if mode == "dense":
        assert similarity is not None
        return similarity, None
    assert keyword is not None
    kw_top = float(keyword.max()) if len(keyword) else 0.0
    kw_norm = keyword / kw_top if kw_top > 0 else keyword
    if mode == "keyword":
        return kw_norm, keyword > 0
    assert similarity is not None
    clipped = np.clip(similarity, 0.0, None)
    top = float(clipped.max()) if len(clipped) else 0.0
    sim_norm = clipped / top if top > 0 else clipped
    weight = DENSE_WEIGHT if kw_top > 0 else 1.0
    return weight * sim_norm + (1 - weight) * kw_norm, (similarity >= MIN_SIMILARITY) | (keyword > 0)


def _top(candidates: np.ndarray | None, score: np.ndarray, wanted: int) -> np.ndarray:
    """The rows of the `wanted` best candidates (None: every row) in order, without sorting all of them.

    Equal scores are ordered by row, so every page of a query is cut from one and the same ranking.
    """
    cand = score if candidates is None else score[candidates]
    if wanted == 0:
        return np.zeros(0, dtype=np.int64)
    if wanted < len(cand):
        part = np.argpartition(cand, len(cand) - wanted)[len(cand) - wanted :]
        kth = cand[part].min()
        if np.count_nonzero(cand >= kth) > wanted:
            # Ties at the cut: which of them argpartition kept is arbitrary, so take them all and cut by row.
            part = np.flatnonzero(cand >= kth)
    else:
        part = np.arange(len(cand))
    chosen = part[np.lexsort((part, -cand[part]))[:wanted]]
    return chosen if candidates is None else candidates[chosen]


def _non_empty(indexes: list[CollectionIndex], targets: Sequence[SearchTarget]
               ) -> tuple[list[CollectionIndex], list[SearchTarget]]:
    pairs = [(ix, t) for ix, t in zip(indexes, targets) if ix.size]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _hits(indexes: list[CollectionIndex], targets: Sequence[SearchTarget], rows: np.ndarray, score: np.ndarray,
          similarity: np.ndarray | None, keyword: np.ndarray | None) -> list[Hit]:
    """Hits for rows of the concatenation of `indexes` (the array work once for all rows, not per hit)."""
    if not len(rows):
        return []
    starts = np.cumsum([0] + [ix.size for ix in indexes])
    which = np.searchsorted(starts, rows, side="right") - 1  # the index holding each row
    local = (rows - starts[which]).tolist()
    scores = score[rows].tolist()
    sims = similarity[rows].tolist() if similarity is not None else [0.0] * len(rows)
    kws = keyword[rows].tolist() if keyword is not None else [0.0] * len(rows)
    hits = []
    for j, (n, i) in enumerate(zip(which.tolist(), local)):
        d = indexes[n].data
        hits.append(Hit(
            text=d.texts[i], score=scores[j], similarity=sims[j], keyword=kws[j], label=targets[n].label,
            file_name=d.file_names[i], page=int(d.pages[i]), chunk_index=int(d.chunk_indexes[i]),
            passage_id=int(d.ids[i]),
            inserted_at=_moment(int(d.inserted_at[i])),
        ))
    return hits


@functools.lru_cache(maxsize=4096)
def _moment(epoch_ms: int) -> datetime:
    # Every passage of one load shares its time stamp, and building a datetime costs more than the rest of a hit.
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
