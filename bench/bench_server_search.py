"""Search inside a real Milvus server at up to a million passages over 100 sources (agent/archival/server_search.py).

Builds the shared layout (one collection, tenant partition key, HNSW) with synthetic passages, then measures in a
fresh process, as a bot process would see it:
  cold         the first search of the process (connecting, finding the collection, the first query)
  p50 / p95    warm latency of Searcher.search (dense; hybrid with an identifier in the query)
  recall@10    against exact numpy top-10 over exactly the visible passages
  memory       the search process's RSS growth from before its first search to after the last
for two visibility cases: every source visible, and 3 of the 100 sources.

    python bench/bench_server_search.py                       # 1M passages; starts scripts/milvus-server.sh
    python bench/bench_server_search.py --size 100000         # quicker
    python bench/bench_server_search.py --milvus-uri http://127.0.0.1:19530 --keep

Vectors: 400 random topic centres in 384 dimensions plus Gaussian noise, unit length (embedding a million real
passages would take days on two cores). Rows are written with batched client inserts shaped exactly as
SharedCollections writes them (tenant, idents), not through a load: this measures search, not loading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from agent.archival.search import SearchTarget  # noqa: E402

MODEL, DIM = "all-MiniLM-L6-v2", 384
SOURCES, DOCS_PER_SOURCE, VISIBLE_FEW = 100, 2, 3
QUERIES = 100
PREFIX = "bench_server"


def corpus(size: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors around topic centres; each row's source and document (row-contiguous per source)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((400, DIM)).astype(np.float32)
    vectors = np.empty((size, DIM), np.float32)
    for start in range(0, size, 100_000):
        n = min(100_000, size - start)
        block = centres[rng.integers(0, len(centres), n)] + 0.9 * rng.standard_normal((n, DIM)).astype(np.float32)
        vectors[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    source = np.arange(size) * SOURCES // size
    doc = source * DOCS_PER_SOURCE + (np.arange(size) % DOCS_PER_SOURCE) + 1
    return vectors, source, doc


def queries(vectors: np.ndarray, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), QUERIES)] + 0.5 * rng.standard_normal((QUERIES, DIM)) / 10
    return (picked / np.linalg.norm(picked, axis=1, keepdims=True)).astype(np.float32)


def exact_truth(vectors: np.ndarray, rows: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Ids of the exact top-10 over `rows` for each query (ids are row numbers)."""
    out = np.empty((len(qs), 10), np.int64)
    for n, q in enumerate(qs):
        sims = vectors[rows] @ q
        top = np.argpartition(-sims, 10)[:10]
        out[n] = rows[top[np.argsort(-sims[top])]]
    return out


def tenant(source: int) -> str:
    return f"{PREFIX}_src_{source}"


def build(uri: str, size: int, vectors: np.ndarray, source: np.ndarray, doc: np.ndarray) -> dict[str, float]:
    from agent.archival.milvus_store import PassageStore

    store = PassageStore(uri, PREFIX)
    assert store.shared is not None, "a Milvus server URI is needed (http://HOST:PORT)"
    client = store.client
    name = store.shared.physical(MODEL, DIM)
    if client.has_collection(name):
        client.drop_collection(name)
    store.shared.open(name, DIM)
    started = time.perf_counter()
    batch = 5_000
    for start in range(0, size, batch):
        stop = min(size, start + batch)
        rows = [{"id": i, "vector": vectors[i], "text": f"passage {i} of source {source[i]}: synthetic text.",
                 "tenant": tenant(int(source[i])), "idents": [f"code-{i}"], "source_id": int(source[i]),
                 "agent_id": 0, "document_id": int(doc[i]), "page": 0, "chunk_index": i, "inserted_at": 0,
                 "file_name": "bench.txt"} for i in range(start, stop)]
        client.insert(name, rows)
        if start % 100_000 == 0:
            print(f"  inserted {stop:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    inserted = time.perf_counter() - started
    client.flush(name)
    while True:
        info = client.describe_index(name, "vector")
        if int(info.get("indexed_rows", 0)) >= size and int(info.get("pending_index_rows", 0)) == 0:
            break
        print(f"  indexing: {info.get('indexed_rows')} of {size:,} ({time.perf_counter() - started:.0f} s)",
              flush=True)
        time.sleep(15)
    indexed = time.perf_counter() - started - inserted
    store.close()
    return {"insert_s": round(inserted, 1), "index_s": round(indexed, 1)}


def measure(uri: str, truth_file: str, visible_sources: list[int], ef: int) -> dict[str, float]:
    """Run in a fresh process: the cold first query and the warm ones, as a bot process sees them."""
    from agent.archival import server_search
    from agent.archival.index import IndexCache
    from agent.archival.milvus_store import PassageStore
    from agent.archival.search import Searcher
    from agent.archival.server_search import ServerSearch

    server_search.SEARCH_EF = ef
    data = np.load(truth_file)
    qs, truth = data["queries"], data["truth"]
    rss_before = _rss_mb()
    store = PassageStore(uri, PREFIX)
    assert store.shared is not None

    class Given:  # the query vector reaches the Searcher through its embedder seam: no model time
        model, dim, max_tokens, vector = MODEL, DIM, 256, qs[0]

        def embed(self, texts: object, progress: object = None) -> np.ndarray:
            return self.vector[None, :]

    given = Given()
    searcher = Searcher(IndexCache(store, 1), lambda: given, ServerSearch(store.shared))  # type: ignore[arg-type,return-value]
    targets = [SearchTarget(tenant(s), 1, f"source {s}", MODEL, DIM,
                            {s * DOCS_PER_SOURCE + d + 1 for d in range(DOCS_PER_SOURCE)}) for s in visible_sources]
    t0 = time.perf_counter()
    searcher.search(targets, "first question", k=10, mode="dense")
    cold = time.perf_counter() - t0
    dense, hybrid, recall = [], [], []
    for n, q in enumerate(qs):
        given.vector = q
        t0 = time.perf_counter()
        page = searcher.search(targets, "what does the report say", k=10, mode="dense")
        dense.append(time.perf_counter() - t0)
        recall.append(len({h.passage_id for h in page.hits} & set(truth[n].tolist())) / 10)
        t0 = time.perf_counter()
        searcher.search(targets, f"what happened with code-{int(truth[n][0])}", k=10, mode="hybrid")
        hybrid.append(time.perf_counter() - t0)
    store.close()
    return {"cold_first_query_s": round(cold, 3), "dense_p50_ms": _ms(dense, 50), "dense_p95_ms": _ms(dense, 95),
            "hybrid_p50_ms": _ms(hybrid, 50), "hybrid_p95_ms": _ms(hybrid, 95),
            "recall_at_10": round(float(np.mean(recall)), 4), "memory_growth_mb": round(_rss_mb() - rss_before, 1)}


def _ms(values: list[float], pct: int) -> float:
    return round(float(np.percentile(values, pct)) * 1000, 1)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_server(directory: Path) -> str:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "milvus-server.sh"), "start", str(directory)],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().rsplit("=", 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--milvus-uri", help="a running Milvus server; default: start scripts/milvus-server.sh")
    parser.add_argument("--keep", action="store_true", help="keep the server (and its data) running afterwards")
    parser.add_argument("--skip-build", action="store_true", help="search what an earlier --keep run built")
    parser.add_argument("--ef", type=int, default=None, help="HNSW search breadth (default: the search's own)")
    parser.add_argument("--measure", nargs=2, metavar=("TRUTH", "SOURCES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # the child process
        print(json.dumps(measure(args.milvus_uri, args.measure[0], json.loads(args.measure[1]), args.ef)))
        return
    server_dir = Path(tempfile.mkdtemp(prefix="bench-milvus-")) if not args.milvus_uri else None
    uri = args.milvus_uri or start_server(server_dir)  # type: ignore[arg-type]
    try:
        run(uri, args)
    finally:
        if server_dir is not None and not args.keep:
            subprocess.run(["bash", str(ROOT / "scripts" / "milvus-server.sh"), "stop", str(server_dir)])
        elif server_dir is not None:
            print(f"server kept: {uri} (stop: scripts/milvus-server.sh stop {server_dir})")


def run(uri: str, args: argparse.Namespace) -> None:
    print(f"{args.size:,} passages over {SOURCES} sources on {uri}", flush=True)
    vectors, source, doc = corpus(args.size)
    if args.ef is None:
        from agent.archival.server_search import SEARCH_EF
        args.ef = SEARCH_EF
    result: dict[str, object] = {"size": args.size, "ef": args.ef, "cpus": os.cpu_count(), "load": os.getloadavg(),
                                 "python": platform.python_version()}
    if not args.skip_build:
        result["build"] = build(uri, args.size, vectors, source, doc)
        print(f"  built: {result['build']}", flush=True)
    qs = queries(vectors)
    few = list(range(0, SOURCES, SOURCES // VISIBLE_FEW))[:VISIBLE_FEW]
    for label, visible in (("all visible", list(range(SOURCES))), (f"{VISIBLE_FEW} of {SOURCES} visible", few)):
        rows = np.flatnonzero(np.isin(source, visible))
        with tempfile.NamedTemporaryFile(suffix=".npz", delete=False) as f:
            np.savez(f, queries=qs, truth=exact_truth(vectors, rows, qs))
        child = subprocess.run([sys.executable, __file__, "--milvus-uri", uri, "--ef", str(args.ef), "--measure",
                                f.name, json.dumps(visible)], capture_output=True, text=True)
        os.unlink(f.name)
        if child.returncode != 0:
            raise SystemExit(child.stderr)
        numbers = json.loads(child.stdout.strip().splitlines()[-1])
        numbers["visible_passages"] = len(rows)
        result[label] = numbers
        print(f"  {label} ({len(rows):,} passages): {numbers}", flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"server_search_{args.size}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
