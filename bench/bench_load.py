"""Load time and throughput with the real local model (default: all-MiniLM-L6-v2 as int8 ONNX), against the
raw embedding rate.

1. The MemGPT paper (13 pages) into a fresh home: total load time and the time spent inside `embed` (the
   embedder's `embed` is wrapped to time it). The model's one-off start (session and weights) is timed apart.
2. A corpus of --pages pages (default 520) built offline from the paper's real text: its pages appended
   again and again into a few PDFs with pypdf's PdfWriter (each PDF gets its own title, so no two files have
   the same content and the loader's "already loaded" check does not skip any). Loaded into a fresh home:
   pages/s and passages/s, then the same passages embedded alone (no reading, parsing or storing): the raw
   embedding rate. Loading overlaps parsing and storing with embedding, so its rate should come close to it.

    python bench/bench_load.py                # paper + 520 pages
    python bench/bench_load.py --pages 60     # quick
    python bench/bench_load.py --model all-MiniLM-L6-v2   # the torch extra
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.embeddings.models import DEFAULT_MODEL, local_embedder  # noqa: E402
from agent.loading.chunker import chunk_pages  # noqa: E402
from agent.loading.inputs import InputFile  # noqa: E402
from agent.loading.readers import reader_for  # noqa: E402
from bot.container import Container  # noqa: E402
from bot.settings import load_settings  # noqa: E402

PAPER = ROOT.parent / "shared" / "data" / "memgpt_paper.pdf"


class EmbedTimer:
    """Wraps an embedder's `embed` in place and adds up the time spent in it."""

    def __init__(self, embedder: Any) -> None:
        self.seconds = 0.0
        self.texts = 0
        self.calls = 0
        inner = embedder.embed

        def timed(texts: Sequence[str], progress: Any = None) -> Any:
            start = time.perf_counter()
            try:
                return inner(texts, progress)
            finally:
                self.seconds += time.perf_counter() - start
                self.texts += len(texts)
                self.calls += 1

        embedder.embed = timed

    def reset(self) -> None:
        self.seconds, self.texts, self.calls = 0.0, 0, 0


def corpus_pdfs(pages: int, files: int, out: Path) -> list[Path]:
    """About `pages` pages of the paper's real text in `files` PDFs."""
    from pypdf import PdfReader, PdfWriter

    source = PdfReader(str(PAPER))
    per_file = -(-pages // files)
    paths = []
    left = pages
    for n in range(files):
        if left <= 0:
            break
        writer = PdfWriter()
        for i in range(min(per_file, left)):
            writer.add_page(source.pages[i % len(source.pages)])
        writer.add_metadata({"/Title": f"membot load benchmark part {n + 1}"})
        buffer = io.BytesIO()
        writer.write(buffer)
        path = out / f"corpus-{n + 1:02}.pdf"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
        left -= min(per_file, left)
    return paths


def fresh_container(embedder: Any, args: argparse.Namespace) -> tuple[Container, Path]:
    home = Path(tempfile.mkdtemp(prefix="membot-bench-load-"))
    env = {"MEMBOT_HOME": str(home), "HOME": str(home)}
    if args.database_url:
        env["MEMBOT_DATABASE_URL"] = args.database_url
    if args.milvus_uri:
        env["MEMBOT_MILVUS_URI"] = args.milvus_uri
    return Container(load_settings(env), embedder=embedder), home


def load(embedder: Any, timer: EmbedTimer, name: str, paths: list[Path], args: argparse.Namespace
         ) -> dict[str, Any]:
    container, home = fresh_container(embedder, args)
    try:
        with container as c:
            timer.reset()
            start = time.perf_counter()
            report = c.loader.load("local", name, [InputFile.from_path(p) for p in paths])
            seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(home, ignore_errors=True)
    failed = report.of("failed")
    if failed or report.passages == 0:
        raise SystemExit(f"load failed: {[(o.name, o.reason) for o in failed]}")
    return {
        "files": len(paths), "pages": report.documents, "passages": report.passages,
        "seconds": round(seconds, 2), "embed_seconds": round(timer.seconds, 2),
        "embed_share": round(timer.seconds / seconds, 3), "pages_per_s": round(report.documents / seconds, 2),
        "passages_per_s": round(report.passages / seconds, 1),
    }


def raw_rate(embedder: Any, paths: list[Path]) -> float:
    """Passages/s of `embed` alone on the corpus's own passages, chunked as the loader chunks them."""
    texts = []
    for path in paths:
        pages = reader_for(path.name)(path.read_bytes())
        texts += [c.text for c in chunk_pages(pages, embedder.tokens, embedder.max_tokens - 2, 20, True)]
    start = time.perf_counter()
    embedder.embed(texts)
    return round(len(texts) / (time.perf_counter() - start), 1)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=520, help="pages in the throughput corpus (0: skip it)")
    ap.add_argument("--files", type=int, default=4, help="PDFs the corpus is split into")
    ap.add_argument("--batch-size", type=int, default=32, help="embedding batch size (MEMBOT_EMBEDDING_BATCH_SIZE)")
    ap.add_argument("--database-url", help="default: SQLite in a fresh temporary home")
    ap.add_argument("--milvus-uri", help="default: Milvus Lite in a fresh temporary home")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a local model (MEMBOT_EMBEDDING_MODEL)")
    args = ap.parse_args(argv)

    start = time.perf_counter()
    embedder = local_embedder(args.model, args.batch_size)
    embedder.embed(["warm up"])  # starts the runtime and reads the weights
    startup = time.perf_counter() - start
    timer = EmbedTimer(embedder)

    rows: dict[str, dict[str, Any]] = {}
    rows["paper"] = load(embedder, timer, "paper", [PAPER], args)
    if args.pages > 0:
        with tempfile.TemporaryDirectory(prefix="membot-bench-corpus-") as tmp:
            paths = corpus_pdfs(args.pages, args.files, Path(tmp))
            rows[f"corpus {args.pages}p"] = load(embedder, timer, "corpus", paths, args)
            rows[f"corpus {args.pages}p"]["raw_passages_per_s"] = raw_rate(embedder, paths)

    print(f"model start (import + weights, once per process): {startup:.1f} s; batch size {args.batch_size}; "
          f"{os.cpu_count()} CPUs")
    print(f"{'load':<14} {'files':>5} {'pages':>6} {'passages':>8} {'seconds':>8} {'embed s':>8} {'embed %':>8} "
          f"{'pages/s':>8} {'passages/s':>10}")
    for name, r in rows.items():
        print(f"{name:<14} {r['files']:>5} {r['pages']:>6} {r['passages']:>8} {r['seconds']:>8.2f} "
              f"{r['embed_seconds']:>8.2f} {100 * r['embed_share']:>7.1f}% {r['pages_per_s']:>8.2f} "
              f"{r['passages_per_s']:>10.1f}")
        if "raw_passages_per_s" in r:
            print(f"{'':<14} raw embedding alone: {r['raw_passages_per_s']:.1f} passages/s; loading runs at "
                  f"{100 * r['passages_per_s'] / r['raw_passages_per_s']:.0f}% of it")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "model": args.model, "model_start_s": round(startup, 2),
            "args": vars(args)}
    path.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
