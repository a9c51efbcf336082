"""Many channels at once: answer latency and turns per second on SQLite and PostgreSQL.

    python bench/bench_parallel.py [--channels 50] [--delay 1.0] [--turns 300] [--workers 64]

Each channel is its own agent (as each Slack channel or Discord server channel is). The model is the fake OpenAI
server on 127.0.0.1 answering every call with `send_message` after `--delay` seconds, through the real `openai`
client; it runs in a process of its own, as a model server does (--model-in-process shares the bench's CPU and
GIL with it, which slows the bot's own work down). Storage is the real SQLite file (WAL) or a fresh PostgreSQL
database on 127.0.0.1:5432, Milvus Lite for archival memory. Two runs per backend:
(1) latency: every channel asks one question at the same moment; p50/p95/max of the time from submit to answer;
(2) throughput: `--turns` questions spread over the channels with an instant model; turns per second.
Writes bench/results/bench_parallel-<time>.json and prints the numbers. The turn pool size is --workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.memory.core import Speaker  # noqa: E402
from agent.turns import Incoming  # noqa: E402
from bot.container import Container  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from tests.fakes import FakeOpenAI  # noqa: E402
from tests.fakes.openai_server import default_reply, delay  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
# The model server process: answers after the delay written in the file argv[1] (so the bench can change it).
MODEL_SERVER = """
import sys, time
from pathlib import Path
from tests.fakes import FakeOpenAI
from tests.fakes.openai_server import default_reply, delay
setting = Path(sys.argv[1])
with FakeOpenAI(default=lambda r: delay(float(setting.read_text()), default_reply(r))) as fake:
    print(fake.base_url, flush=True)
    sys.stdin.read()
"""
ANN = Speaker("U1", "Ann")


def pg_database() -> str:
    import psycopg

    name = f"bench_parallel_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(container: Container, agents: list[int], questions: int) -> tuple[list[float], float]:
    """Submit `questions` turns round-robin over `agents` at once; each one's latency and the wall time."""
    latencies: list[float] = []
    lock = threading.Lock()
    done = threading.Event()
    started = time.perf_counter()

    def finished(at: float) -> Any:
        def callback(future: Any) -> None:
            future.result()  # a failed turn must show, not count as fast
            with lock:
                latencies.append(time.perf_counter() - at)
                if len(latencies) == questions:
                    done.set()
        return callback

    for i in range(questions):
        at = time.perf_counter()
        container.agents.submit(agents[i % len(agents)], Incoming(f"question {i}", ANN)).add_done_callback(
            finished(at))
    if not done.wait(600):
        raise SystemExit(f"only {len(latencies)} of {questions} turns finished in 600 s")
    return latencies, time.perf_counter() - started


class ModelServer:
    """The fake model, answering after `seconds`: in this process, or in a process of its own."""

    def __init__(self, seconds: float, own_process: bool, tmp: str) -> None:
        self.setting = Path(tmp) / "model-delay"
        self.seconds = seconds
        self.own_process = own_process

    @property
    def seconds(self) -> float:
        return float(self.setting.read_text())

    @seconds.setter
    def seconds(self, value: float) -> None:
        self.setting.write_text(str(value))

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        if not self.own_process:
            with FakeOpenAI(default=lambda r: delay(self.seconds, default_reply(r))) as fake:
                yield fake.base_url
            return
        proc = subprocess.Popen([sys.executable, "-c", MODEL_SERVER, str(self.setting)], cwd=ROOT, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            yield proc.stdout.readline().strip()
        finally:
            proc.kill()
            proc.wait()


def backend(name: str, url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        model = ModelServer(args.delay, not args.model_in_process, tmp)
        with model.running() as base_url:
            return measure(name, url, args, model, base_url, tmp)


def measure(name: str, url: str | None, args: argparse.Namespace, model: ModelServer, base_url: str, tmp: str
            ) -> dict[str, Any]:
    env = {"MEMBOT_HOME": tmp, "HOME": tmp, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "bench",
           "MEMBOT_LLM_MODEL": "fake-model", "MEMBOT_TURN_WORKERS": str(args.workers)}
    if url:
        env["MEMBOT_DATABASE_URL"] = url
    with Container(load_settings(env)) as c:
        agents = [int(c.agents.open("bench", f"channel-{i}").id or 0) for i in range(args.channels)]
        run(c, agents, len(agents))  # warm: every agent's first turn (its person block, connections)
        lat, wall = run(c, agents, len(agents))
        model.seconds = 0.0
        tput, tput_wall = run(c, agents, args.turns)
    q = statistics.quantiles(lat, n=20, method="inclusive")
    result = {"backend": name, "channels": args.channels, "delay_s": args.delay,
              "model_in_process": args.model_in_process,
              "p50_s": round(statistics.median(lat), 3), "p95_s": round(q[18], 3), "max_s": round(max(lat), 3),
              "wall_s": round(wall, 3), "instant_turns": args.turns,
              "turns_per_s": round(args.turns / tput_wall, 1), "instant_p50_s": round(statistics.median(tput), 3)}
    print(f"{name:>10}: {args.channels} channels, model {args.delay:.1f} s: p50 {result['p50_s']:.2f} s, "
          f"p95 {result['p95_s']:.2f} s, max {result['max_s']:.2f} s | instant model: "
          f"{result['turns_per_s']:.1f} turns/s over {args.turns} turns")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--model-in-process", action="store_true", help="run the fake model in the bench process")
    args = parser.parse_args()
    results = [backend("sqlite", None, args)]
    if not args.no_postgres:
        url = pg_database()
        try:
            results.append(backend("postgresql", url, args))
        finally:
            drop_pg(url)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (out / f"bench_parallel-{stamp}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
