"""Search latency and recall at 10k and 100k passages spread over many sources, on the real stores.

An agent sees a few of the sources. For each size we time, per query:
  numpy        brute force over exactly the vectors the agent may see (pre-gathered in one matrix): the goal line
  dense        Searcher.search in dense mode, warm cache (what an agent's archival search runs)
  hybrid       Searcher.search in hybrid mode (dense + BM25), warm cache
  e2e dense    Sources.search: the above plus the SQL look-ups of the sources and their ready documents
  milvus       raw MilvusClient.search, limit 10, on each visible source's collection, merged
  milvus all   (--whole) one collection holding every passage, filtered by `source_id in [...]`
and once per size the cold first query (reading the visible collections from Milvus into the cache).

Vectors are synthetic but realistic: a few hundred real all-MiniLM-L6-v2 embeddings of varied sentences plus
Gaussian noise (each source draws on its own topics); texts are synthetic sentences. Embedding 100k passages
would take hours; the query vector is handed to the Searcher through a tiny embedder (its own seam).

    python bench/bench_search.py                 # 10k and 100k passages over 100 sources
    python bench/bench_search.py --sizes 2000    # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from agent.archival.index import IndexCache  # noqa: E402
from agent.archival.milvus_store import PassageRow, now_ms, passage_id  # noqa: E402
from agent.archival.search import Searcher, SearchTarget  # noqa: E402
from agent.embeddings.base import normalise  # noqa: E402
from bot.container import Container  # noqa: E402
from bot.settings import load_settings  # noqa: E402

MODEL, DIM = "all-MiniLM-L6-v2", 384
SCOPE = f"bench-{os.getpid()}-{int(time.time())}"  # a fresh scope even on a shared --database-url
WORDS = ("storage latency budget contract roadmap incident customer vaccine migration postgres supplier memory "
         "leak search release backup cluster invoice payroll hiring legal audit firmware printer network "
         "gateway certificate rollout outage pipeline dashboard quarterly forecast revenue churn onboarding "
         "kernel compiler cache eviction shard replica quorum ledger refund warranty shipment customs tariff "
         "solar battery turbine sensor telemetry anomaly threshold alert pager rotation handover").split()
PARTS = (["The contract", "Our roadmap", "The incident review", "A customer email", "The lab notebook",
          "The hiring plan", "The release note", "A design document", "The budget sheet", "The press kit",
          "The audit trail", "A support ticket", "The board memo", "The field report", "The wiki page"],
         ["describes", "questions", "summarises", "postpones", "approves", "rejects", "mentions", "explains"],
         ["the new storage layer", "quarterly revenue", "the outage on Tuesday", "a vaccine trial",
          "the migration to PostgreSQL", "remote work rules", "a supplier in Lyon", "memory leaks",
          "the search latency goal", "the annual party", "solar panel output", "the legal hold",
          "the payroll run", "a firmware rollout", "customs delays", "the on-call rotation"])


class QueryEmbedder:
    """Hands the Searcher the query vector the benchmark chose (the model's own seam)."""

    model, dim, max_tokens = MODEL, DIM, 256

    def __init__(self) -> None:
        self.vector = np.zeros(DIM, np.float32)

    @property
    def tokens(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def embed(self, texts: Sequence[str], progress=None) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.asarray([self.vector] * len(texts), dtype=np.float32)


@dataclass
class Corpus:
    names: list[str]
    ids: dict[str, np.ndarray]
    vectors: dict[str, np.ndarray]
    texts: dict[str, list[str]]
    topics: dict[str, np.ndarray]  # which base vectors each source draws on


def real_bases(n: int) -> np.ndarray:
    from agent.embeddings.local import LocalEmbedder

    a, b, c = PARTS
    sentences = [f"{x} {y} {z}." for x in a for y in b for z in c]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(sentences), size=min(n, len(sentences)), replace=False)
    return LocalEmbedder(MODEL).embed([sentences[i] for i in pick])


def perturb(rng: np.random.Generator, bases: np.ndarray, pick: np.ndarray, spread: float) -> np.ndarray:
    noise = rng.standard_normal((len(pick), bases.shape[1])).astype(np.float32) / np.sqrt(bases.shape[1])
    return normalise(bases[pick] + spread * noise)


def sentence(rng: np.random.Generator) -> str:
    a, b, c = PARTS
    words = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 12))))
    return f"{a[rng.integers(len(a))]} {b[rng.integers(len(b))]} {c[rng.integers(len(c))]}: {words}."


def build(c: Container, bases: np.ndarray, size: int, sources: int, rng: np.random.Generator) -> Corpus:
    per = size // sources
    corpus = Corpus([f"src{n:03}" for n in range(sources)], {}, {}, {}, {})
    for name in corpus.names:
        source = c.catalog.get_or_create(SCOPE, name, MODEL, DIM, 254)
        sid = int(source.id or 0)
        topics = rng.choice(len(bases), size=12, replace=False)
        vectors = perturb(rng, bases, rng.choice(topics, size=per), spread=0.8)
        texts = [sentence(rng) for _ in range(per)]
        collection = c.passages.source_collection(sid)
        c.passages.ensure(collection, DIM)
        ids: list[int] = []
        for part, rows in (("a.txt", range(0, per // 2)), ("b.txt", range(per // 2, per))):
            doc = c.catalog.begin_document(sid, part, f"{name}-{part}", 1000, 1, len(rows))
            did = int(doc.id or 0)
            stamp = now_ms()
            batch = [PassageRow(passage_id(did, j), vectors[i], texts[i], did, part, 1, j, stamp, source_id=sid)
                     for j, i in enumerate(rows)]
            c.passages.insert(collection, batch)
            c.catalog.commit_document(did, sid)
            ids += [r.id for r in batch]
        corpus.ids[name] = np.asarray(ids, np.int64)
        corpus.vectors[name] = vectors
        corpus.texts[name] = texts
        corpus.topics[name] = topics
    return corpus


def timed(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[object]]:
    out, times = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        out.append(fn())
        times.append((time.perf_counter() - t) * 1000)
    return times, out


def pct(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3)}


def numpy_top(matrix: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    sims = matrix @ q
    top = np.argpartition(-sims, k - 1)[:k]
    return [int(i) for i in ids[top[np.argsort(-sims[top])]]]


def recall(got: Sequence[Sequence[int]], want: Sequence[Sequence[int]]) -> float:
    return float(np.mean([len(set(g) & set(w)) / max(1, len(w)) for g, w in zip(got, want)]))


def run_size(size: int, args: argparse.Namespace, bases: np.ndarray) -> dict[str, object]:
    rng = np.random.default_rng(size)
    home = Path(tempfile.mkdtemp(prefix=f"membot-bench-{size}-"))
    env = {"MEMBOT_HOME": str(home), "HOME": str(home), "MEMBOT_SEARCH_CACHE_ROWS": str(max(2_000_000, size))}
    if args.database_url:
        env["MEMBOT_DATABASE_URL"] = args.database_url
    if args.milvus_uri:
        env["MEMBOT_MILVUS_URI"] = args.milvus_uri
    try:
        if args.blas_threads <= 0:
            return measure(size, args, bases, rng, env)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.blas_threads, user_api="blas"):
            return measure(size, args, bases, rng, env)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def measure(size: int, args: argparse.Namespace, bases: np.ndarray, rng: np.random.Generator,
            env: dict[str, str]) -> dict[str, object]:
    query_embedder = QueryEmbedder()
    result: dict[str, object] = {"passages": size, "sources": args.sources, "visible_sources": args.visible}
    with Container(load_settings(env), embedder=query_embedder) as c:
        t = time.perf_counter()
        corpus = build(c, bases, size, args.sources, rng)
        insert_s = time.perf_counter() - t
        result["insert_s"] = round(insert_s, 1)
        visible = [str(n) for n in rng.choice(corpus.names, size=args.visible, replace=False)]
        matrix = np.ascontiguousarray(np.concatenate([corpus.vectors[n] for n in visible]))
        ids = np.concatenate([corpus.ids[n] for n in visible])
        result["visible_passages"] = int(len(ids))
        # Queries near the visible sources' topics (the agent asks about what it has), a few anywhere.
        topics = np.concatenate([corpus.topics[n] for n in visible])
        near = perturb(rng, bases, rng.choice(topics, size=args.queries * 3 // 4), spread=0.5)
        anywhere = perturb(rng, bases, rng.integers(0, len(bases), size=args.queries - len(near)), spread=0.5)
        queries = np.concatenate([near, anywhere])
        texts = [" ".join(rng.choice(WORDS, size=3)) for _ in queries]

        searcher = Searcher(IndexCache(c.passages, max(2_000_000, size)), lambda: query_embedder)
        t = time.perf_counter()
        targets: list[SearchTarget] = [c.sources.target(c.catalog.get(SCOPE, n)) for n in visible]
        lookup_ms = (time.perf_counter() - t) * 1000
        query_embedder.vector = queries[0]
        t = time.perf_counter()
        searcher.search(targets, texts[0], k=args.k, mode="dense")
        result["cold_first_query_ms"] = round((time.perf_counter() - t) * 1000, 1)
        result["catalog_lookup_ms"] = round(lookup_ms, 2)

        rows: dict[str, dict[str, float]] = {}
        want: list[list[int]] = []
        times: dict[str, list[float]] = {m: [] for m in ("numpy", "dense", "hybrid", "e2e dense", "milvus")}
        got: dict[str, list[list[int]]] = {m: [] for m in times}
        milvus_search = c.passages._client.search  # raw client, for comparison only
        collections = [t.collection for t in targets]
        for _round in range(2):  # the first round warms up; the second is measured
            for m in times:
                times[m].clear()
                got[m].clear()
            want.clear()
            for q, text in zip(queries, texts):
                query_embedder.vector = q
                t = time.perf_counter()
                exact = numpy_top(matrix, ids, q, args.k)
                times["numpy"].append((time.perf_counter() - t) * 1000)
                want.append(exact)
                for mode in ("dense", "hybrid"):
                    t = time.perf_counter()
                    page = searcher.search(targets, text, k=args.k, mode=mode)
                    times[mode].append((time.perf_counter() - t) * 1000)
                    got[mode].append([h.passage_id for h in page.hits])
                t = time.perf_counter()
                page = c.sources.search(SCOPE, visible, text, k=args.k, mode="dense")
                times["e2e dense"].append((time.perf_counter() - t) * 1000)
                got["e2e dense"].append([h.passage_id for h in page.hits])
                t = time.perf_counter()
                merged: list[tuple[float, int]] = []
                for coll in collections:
                    res = milvus_search(coll, [q.tolist()], limit=args.k, output_fields=["id"],
                                        search_params={"metric_type": "COSINE"})
                    merged += [(float(h["distance"]), int(h["id"])) for h in res[0]]
                merged.sort(reverse=True)
                times["milvus"].append((time.perf_counter() - t) * 1000)
                got["milvus"].append([i for _, i in merged[: args.k]])
        if args.whole:
            times["milvus all"], got["milvus all"] = whole_collection(c, corpus, visible, queries, args.k)
        base = float(np.percentile(times["numpy"], 50))
        for m, ts in times.items():
            rows[m] = {**pct(ts), "x_numpy_p50": round(float(np.percentile(ts, 50)) / base, 2)}
            if m not in ("hybrid", "numpy"):
                rows[m]["recall@10"] = round(recall(got[m], want), 4)
        result["latency"] = rows
    return result


def whole_collection(c: Container, corpus: Corpus, visible: list[str], queries: np.ndarray, k: int
                     ) -> tuple[list[float], list[list[int]]]:
    """Every passage in one collection, searched with a filter on the visible sources (the design not taken)."""
    name = "bench_all"
    c.passages.drop(name)
    c.passages.ensure(name, DIM)
    sid_of = {n: int(c.catalog.get(SCOPE, n).id or 0) for n in corpus.names}
    for n in corpus.names:
        c.passages.insert(name, [PassageRow(int(i), v, t, 0, "", 0, 0, 0, source_id=sid_of[n])
                                 for i, v, t in zip(corpus.ids[n], corpus.vectors[n], corpus.texts[n])])
    expr = f"source_id in [{', '.join(str(sid_of[n]) for n in visible)}]"
    search = c.passages._client.search
    times: list[float] = []
    got: list[list[int]] = []
    for _round in range(2):
        times.clear()
        got.clear()
        for q in queries:
            t = time.perf_counter()
            res = search(name, [q.tolist()], limit=k, filter=expr, output_fields=["id"])
            times.append((time.perf_counter() - t) * 1000)
            got.append([int(h["id"]) for h in res[0]])
    c.passages.drop(name)
    return times, got


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated passage counts (default 10000,100000)")
    ap.add_argument("--sources", type=int, default=100, help="sources the passages are spread over")
    ap.add_argument("--visible", type=int, default=3, help="sources the agent may see")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--bases", type=int, default=400, help="real embeddings the synthetic vectors are made from")
    ap.add_argument("--whole", action=argparse.BooleanOptionalAction, default=True,
                    help="also time one all-passages collection with a source filter (doubles insert time)")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads for numpy and the Searcher alike (0: the library's default); a two-thread "
                         "matrix-vector product is erratic on a busy machine")
    ap.add_argument("--database-url", help="default: SQLite in a fresh temporary home")
    ap.add_argument("--milvus-uri", help="default: Milvus Lite in a fresh temporary home")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    t = time.perf_counter()
    bases = real_bases(args.bases)
    print(f"{len(bases)} real base embeddings in {time.perf_counter() - t:.1f} s")
    results = []
    for size in sizes:
        res = run_size(size, args, bases)
        results.append(res)
        print(f"\n{size:,} passages in {args.sources} sources (inserted in {res['insert_s']} s); agent sees "
              f"{args.visible} sources = {res['visible_passages']:,} passages; cold first query "
              f"{res['cold_first_query_ms']} ms (catalog look-up {res['catalog_lookup_ms']} ms)")
        print(f"{'path':<12} {'p50 ms':>9} {'p95 ms':>9} {'x numpy':>8} {'recall@10':>10}")
        for m, row in res["latency"].items():  # type: ignore[attr-defined]
            r = row.get("recall@10")
            print(f"{m:<12} {row['p50_ms']:>9.3f} {row['p95_ms']:>9.3f} {row['x_numpy_p50']:>8.2f} "
                  f"{'' if r is None else f'{r:.3f}':>10}")
        dense = res["latency"]["dense"]  # type: ignore[index]
        ok = dense["x_numpy_p50"] <= 3 and dense["recall@10"] >= 0.95
        print(f"goal (dense p50 <= 3x numpy, recall@10 >= 0.95): {'met' if ok else 'NOT met'}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_search-{time.strftime('%Y%m%d-%H%M%S')}.json"
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "args": vars(args)}
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
