"""Hybrid search inside a Milvus server: HNSW vector hits and keyword hits of the sources an agent may see, fused
on the same scale as the in-process search (agent/archival/search.py).

The keyword side is BM25 on servers with full-text search (2.5+), and on every server an exact match of the
query's identifiers (UUIDs, error codes) against each passage's `idents` array, so such an identifier ranks
first even on 2.3/2.4. Both sides are asked for a bounded number of candidates: a total that reached that bound
is reported as a lower bound ("at least N"), never as an exact count.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from agent.archival.identifiers import identifiers
from agent.archival.search import DENSE_WEIGHT, MIN_SIMILARITY, Hit, SearchPage, SearchTarget
from agent.archival.search import _moment as moment
from agent.archival.server_layout import SharedCollections, quote
from agent.errors import UserError

CANDIDATES = 100  # hits asked of each side at least; more when a later page needs them
MAX_CANDIDATES = 16_384  # Milvus's largest topk
SEARCH_EF = 256  # HNSW breadth: ef 256 keeps recall@10 >= 0.95 at a million 384-dim vectors
IDENTIFIER_WEIGHT = 2.0  # an exact identifier outweighs any BM25 score (which is scaled to at most 1)
SESSION = "Session"  # a process sees its own writes at once, others' as soon as the server has them
SIDE_THREADS = 32  # the vector and keyword sides of concurrent searches run side by side on these
T = TypeVar("T")
OUTPUT = ["id", "text", "tenant", "file_name", "page", "chunk_index", "inserted_at"]


@dataclass
class Candidate:
    id: int
    similarity: float | None = None  # None until known: a keyword hit the vector search did not return
    bm25: float = 0.0
    identifiers: int = 0  # how many of the query's identifiers the passage holds
    keyword: float = 0.0  # the fused keyword side, 0-1, as the hit shows it


def visibility(targets: Sequence[SearchTarget]) -> str:
    """A filter for exactly the rows the targets may see: their tenants, and only the ready documents of those
    that list them (a file still loading, or one replaced, has rows that must not be found).

    Document ids are unique across sources (one SQL sequence), so one `tenant in [..] and document_id in [..]`
    says it for every source at once. Not one clause per source: Milvus 2.3 fails on a few dozen OR-ed clauses
    ("unsupported expr proto node").
    """
    whole = [t.collection for t in targets if t.visible is None]
    parts = [t for t in targets if t.visible]
    clauses = []
    if parts:
        docs = sorted({int(d) for t in parts for d in t.visible or ()})
        clauses.append(f"(tenant in [{', '.join(quote(t.collection) for t in parts)}] and "
                       f"document_id in [{','.join(map(str, docs))}])")
    if whole:
        clauses.append(f"tenant in [{', '.join(quote(c) for c in whole)}]")
    return " or ".join(clauses)


class ServerSearch:
    def __init__(self, shared: SharedCollections) -> None:
        self.shared = shared

    def describe(self) -> str:
        old = self.shared.legacy()
        if not old:
            return self.shared.features.mode
        return (f"{self.shared.features.mode}; {len(old)} collection(s) of the old one-per-source layout are not "
                "searched until `membot sources migrate` moves them")

    def search(self, targets: Sequence[SearchTarget], query: str, k: int, page: int, mode: str,
               vector: np.ndarray | None) -> SearchPage:
        expr = visibility(targets)
        if not expr:
            return SearchPage(query, [], 0, page, 0, k, mode, 0)
        idents = identifiers(query)
        bm25 = self.shared.features.bm25
        if mode == "keyword" and not idents and not bm25:
            raise UserError(
                f"Keyword search on this Milvus server ({self.shared.features.version}, no full-text search "
                "before 2.5) matches identifiers only, such as UUIDs or error codes. Use the hybrid or dense "
                "mode for words."
            )
        name = self.shared.physical(targets[0].model, targets[0].dim)
        self.shared.open(name, targets[0].dim)
        limit = min(MAX_CANDIDATES, max(CANDIDATES, page * k))
        sides: list[Callable[[], tuple[dict[int, Candidate], bool]]] = []
        if mode != "keyword":
            assert vector is not None
            v = vector
            sides.append(lambda: self._dense(name, expr, v, limit, mode))
        if mode != "dense":
            if bm25:
                sides.append(lambda: self._bm25(name, expr, query, limit))
            if idents:
                sides.append(lambda: self._identifiers(name, expr, idents, limit))
        found: dict[int, Candidate] = {}
        saturated = False
        for side, full in _together(sides):
            saturated |= full
            for cid, c in side.items():
                merged = found.setdefault(cid, Candidate(cid))
                merged.similarity = c.similarity if c.similarity is not None else merged.similarity
                merged.bm25 = max(merged.bm25, c.bm25)
                merged.identifiers = max(merged.identifiers, c.identifiers)
        if mode != "dense" and vector is not None:
            self._fill_similarity(name, vector, found)
        return self._page(name, targets, query, k, page, mode, found, saturated)

    # the three sides: each returns its candidates, and whether more that count may lie beyond them ------
    def _dense(self, name: str, expr: str, vector: np.ndarray, limit: int,
               mode: str) -> tuple[dict[int, Candidate], bool]:
        result = self.shared.client.search(
            name, data=[vector.tolist()], anns_field="vector", filter=expr, limit=limit, output_fields=[],
            search_params={"metric_type": "COSINE", "params": {"ef": max(SEARCH_EF, limit)}},
            consistency_level=SESSION,
        )
        hits = result[0] if result else []
        found = {int(h["id"]): Candidate(int(h["id"]), similarity=float(h["distance"])) for h in hits}
        if len(hits) < limit:
            return found, False
        # Hits come nearest first: when the farthest is below the threshold, so is every row not returned.
        return found, mode == "dense" or float(hits[-1]["distance"]) >= MIN_SIMILARITY

    def _bm25(self, name: str, expr: str, query: str, limit: int) -> tuple[dict[int, Candidate], bool]:
        result = self.shared.client.search(
            name, data=[query], anns_field="sparse", filter=expr, limit=limit, output_fields=[],
            search_params={"metric_type": "BM25"}, consistency_level=SESSION,
        )
        hits = result[0] if result else []
        # Milvus reports BM25 as a score where higher is better (some builds negate it: keep the size).
        return {int(h["id"]): Candidate(int(h["id"]), bm25=abs(float(h["distance"]))) for h in hits}, \
            len(hits) >= limit

    def _identifiers(self, name: str, expr: str, idents: list[str],
                     limit: int) -> tuple[dict[int, Candidate], bool]:
        wanted = ", ".join(quote(i) for i in idents)
        rows = self.shared.client.query(
            # The identifiers first: Milvus 2.3 then checks visibility only on the few rows that hold one (a
            # third less time at a million rows).
            name, filter=f"array_contains_any(idents, [{wanted}]) and ({expr})", output_fields=["id", "idents"],
            limit=limit, consistency_level=SESSION,
        )
        found = {int(r["id"]): Candidate(int(r["id"]), identifiers=len(set(r.get("idents", [])) & set(idents)))
                 for r in rows}
        return found, len(rows) >= limit

    def _fill_similarity(self, name: str, vector: np.ndarray, found: dict[int, Candidate]) -> None:
        """Keyword hits that the vector search did not return still get their true cosine similarity."""
        missing = [i for i, c in found.items() if c.similarity is None]
        if not missing:
            return
        rows = self.shared.client.query(name, filter=f"id in [{','.join(map(str, missing))}]",
                                        output_fields=["id", "vector"], consistency_level=SESSION)
        for row in rows:
            v = np.asarray(row["vector"], dtype=np.float32)
            norm = float(np.linalg.norm(v) * np.linalg.norm(vector)) or 1.0
            found[int(row["id"])].similarity = float(v @ vector) / norm

    # fusion and paging -------------------------------------------------------------------------------
    def _page(self, name: str, targets: Sequence[SearchTarget], query: str, k: int, page: int, mode: str,
              found: dict[int, Candidate], saturated: bool) -> SearchPage:
        ranked = fuse(list(found.values()), mode)
        total = len(ranked)
        labels = {t.collection: t.label for t in targets}
        shown = ranked[(page - 1) * k : page * k]
        # Texts only for the hits shown, not for every candidate: a passage may be 64 KB.
        rows = {int(r["id"]): r for r in self.shared.client.query(
            name, filter=f"id in [{','.join(str(c.id) for c, _ in shown)}]", output_fields=OUTPUT,
            consistency_level=SESSION)} if shown else {}
        hits = [_hit(c, score, rows[c.id], labels) for c, score in shown if c.id in rows]  # not deleted meanwhile
        # `searched` stays 0: the server does not say how many rows its index looked at.
        return SearchPage(query, hits, total, page, math.ceil(total / k), k, mode, 0, at_least=saturated)


def _together(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls at the same time (each is a round trip to the server, which searches on several cores):
    all but the last on the shared pool's threads, the last on this one."""
    if len(calls) < 2:
        return [call() for call in calls]
    futures = [_pool().submit(call) for call in calls[:-1]]
    last = calls[-1]()
    return [f.result() for f in futures] + [last]


@functools.cache
def _pool() -> ThreadPoolExecutor:
    # Threads start only as searches need them; SIDE_THREADS searching at once before one waits for another.
    return ThreadPoolExecutor(max_workers=SIDE_THREADS, thread_name_prefix="membot-search-side")


def fuse(candidates: list[Candidate], mode: str) -> list[tuple[Candidate, float]]:
    """The candidates that count as results, best first, with the in-process search's fusion: the dense
    similarity scaled by the best one, the keyword side by its best, weighted DENSE_WEIGHT to the rest."""
    top_bm25 = max((c.bm25 for c in candidates), default=0.0)
    kw = [(c.bm25 / top_bm25 if top_bm25 > 0 else 0.0) + IDENTIFIER_WEIGHT * c.identifiers for c in candidates]
    kw_top = max(kw, default=0.0)
    for c, x in zip(candidates, kw):
        c.keyword = x / kw_top if kw_top > 0 else 0.0
    sims = [c.similarity or 0.0 for c in candidates]
    if mode == "dense":
        scored = list(zip(candidates, sims))
    elif mode == "keyword":
        scored = [(c, c.keyword) for c in candidates if c.keyword > 0]
    else:
        top = max((max(s, 0.0) for s in sims), default=0.0)
        weight = DENSE_WEIGHT if kw_top > 0 else 1.0
        scored = [(c, weight * (max(s, 0.0) / top if top > 0 else 0.0) + (1 - weight) * c.keyword)
                  for c, s in zip(candidates, sims) if s >= MIN_SIMILARITY or c.keyword > 0]
    scored.sort(key=lambda pair: (-pair[1], pair[0].id))
    return scored


def _hit(c: Candidate, score: float, r: dict[str, Any], labels: dict[str, str]) -> Hit:
    return Hit(text=r.get("text", ""), score=score, similarity=c.similarity or 0.0, keyword=c.keyword,
               label=labels.get(r.get("tenant", ""), r.get("tenant", "")), file_name=r.get("file_name", ""),
               page=int(r.get("page", 0)), chunk_index=int(r.get("chunk_index", 0)), passage_id=c.id,
               inserted_at=moment(int(r.get("inserted_at", 0))))
