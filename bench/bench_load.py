"""Load time and throughput with the real local model (all-MiniLM-L6-v2), and the share spent embedding.

1. The MemGPT paper (13 pages) into a fresh home: total load time and embedding time (the embedder's `embed`
   is wrapped to time it). The model's one-off start (import and weights) is timed separately.
2. A corpus of --pages pages (default 520) built offline from the paper's real text: its pages appended
   again and again into a few PDFs with pypdf's PdfWriter (each PDF gets its own title, so no two files have
   the same content and the loader's "already loaded" check does not skip any). Loaded into a fresh home:
   pages/s, passages/s and the embedding share.

    python bench/bench_load.py                # paper + 520 pages
    python bench/bench_load.py --pages 60     # quick
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

from agent.loading.inputs import InputFile  # noqa: E402
from bot.container import Container  # noqa: E402
from bot.settings import load_settings  # noqa: E402

PAPER = ROOT.parent / "shared" / "data" / "memgpt_paper.pdf"
MODEL = "all-MiniLM-L6-v2"


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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=520, help="pages in the throughput corpus (0: skip it)")
    ap.add_argument("--files", type=int, default=4, help="PDFs the corpus is split into")
    ap.add_argument("--batch-size", type=int, default=32, help="embedding batch size (MEMBOT_EMBEDDING_BATCH_SIZE)")
    ap.add_argument("--database-url", help="default: SQLite in a fresh temporary home")
    ap.add_argument("--milvus-uri", help="default: Milvus Lite in a fresh temporary home")
    args = ap.parse_args(argv)

    from agent.embeddings.local import LocalEmbedder

    start = time.perf_counter()
    embedder = LocalEmbedder(MODEL, args.batch_size)
    embedder.embed(["warm up"])  # imports torch and reads the weights
    startup = time.perf_counter() - start
    timer = EmbedTimer(embedder)

    rows: dict[str, dict[str, Any]] = {}
    rows["paper"] = load(embedder, timer, "paper", [PAPER], args)
    if args.pages > 0:
        with tempfile.TemporaryDirectory(prefix="membot-bench-corpus-") as tmp:
            paths = corpus_pdfs(args.pages, args.files, Path(tmp))
            rows[f"corpus {args.pages}p"] = load(embedder, timer, "corpus", paths, args)

    print(f"model start (import + weights, once per process): {startup:.1f} s; batch size {args.batch_size}; "
          f"{os.cpu_count()} CPUs")
    print(f"{'load':<14} {'files':>5} {'pages':>6} {'passages':>8} {'seconds':>8} {'embed s':>8} {'embed %':>8} "
          f"{'pages/s':>8} {'passages/s':>10}")
    for name, r in rows.items():
        print(f"{name:<14} {r['files']:>5} {r['pages']:>6} {r['passages']:>8} {r['seconds']:>8.2f} "
              f"{r['embed_seconds']:>8.2f} {100 * r['embed_share']:>7.1f}% {r['pages_per_s']:>8.2f} "
              f"{r['passages_per_s']:>10.1f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "model": MODEL, "model_start_s": round(startup, 2), "args": vars(args)}
    path.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
