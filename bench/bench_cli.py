"""Cold command-line timings, each `membot` run a fresh process as a person runs it, in a fresh home.

- `membot --help`
- `membot load directory ... memgpt_paper.pdf`: model start included
- `membot search ...`: the first search after the load and the next ones (all answered from the snapshot the
  load wrote, without opening Milvus)

Wall time and CPU time (user + system of the child) are both printed: on a busy shared machine the wall time
is mostly waiting for a core, and the CPU time is what the command itself costs.

    python bench/bench_cli.py               # 3 runs each
    python bench/bench_cli.py --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT.parent / "shared" / "data" / "memgpt_paper.pdf"
QUERY = "How does MemGPT manage its context window?"


def run(home: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of one `python -m bot ARGS` in a fresh process."""
    env = {**os.environ, "MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"membot {' '.join(args)} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def median(pairs: list[tuple[float, float]]) -> dict[str, float]:
    return {"wall_s": round(statistics.median(p[0] for p in pairs), 2),
            "cpu_s": round(statistics.median(p[1] for p in pairs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"help": [], "load paper": [], "search, first": [],
                                                  "search, next": []}
    for _ in range(args.runs):
        home = Path(tempfile.mkdtemp(prefix="membot-bench-cli-"))
        try:
            rows["help"].append(run(home, "--help"))
            rows["load paper"].append(run(home, "load", "directory", "--name", "paper", "--input-files", str(PAPER)))
            rows["search, first"].append(run(home, "search", "paper", QUERY, "-k", "3"))
            rows["search, next"] += [run(home, "search", "paper", QUERY, "-k", "3") for _ in range(2)]
        finally:
            shutil.rmtree(home, ignore_errors=True)
    results = {name: median(pairs) for name, pairs in rows.items()}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; medians of {args.runs} run(s)")
    for name, r in results.items():
        print(f"{name:<15} wall {r['wall_s']:>6.2f} s   cpu {r['cpu_s']:>6.2f} s")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_cli-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"load_average": os.getloadavg(), "runs": args.runs, "results": results}, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
