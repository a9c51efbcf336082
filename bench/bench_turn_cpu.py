"""CPU per turn: run turns one after another with an instant model and report wall and process CPU time per turn,
then the functions that took most of it (cProfile).

    python bench/bench_turn_cpu.py [--channels 50] [--turns 200] [--top 25]

The model is the fake OpenAI server on 127.0.0.1 (its CPU is in this process too, as in bench_parallel.py);
storage is a fresh SQLite file and Milvus Lite in a temporary home. Each channel's first turn runs before the
measured ones (its person block, connections).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.memory.core import Speaker  # noqa: E402
from agent.turns import Incoming  # noqa: E402
from bot.container import Container  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from tests.fakes import FakeOpenAI  # noqa: E402
from tests.fakes.openai_server import default_reply  # noqa: E402

ANN = Speaker("U1", "Ann")


def turns(c: Container, agents: list[int], count: int, label: str) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        c.agents._turn(agents[i % len(agents)], Incoming(f"{label} {i}", ANN), None)
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with FakeOpenAI(default=default_reply) as fake, tempfile.TemporaryDirectory() as tmp:
        env = {"MEMBOT_HOME": tmp, "HOME": tmp, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "bench",
               "MEMBOT_LLM_MODEL": "fake-model"}
        with Container(load_settings(env)) as c:
            agents = [int(c.agents.open("bench", f"channel-{i}").id or 0) for i in range(args.channels)]
            turns(c, agents, len(agents), "warm")
            wall, cpu = turns(c, agents, args.turns, "question")
            print(f"{args.turns} turns: {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU per turn")
            profile = cProfile.Profile()
            profile.enable()
            turns(c, agents, args.turns, "profiled")
            profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
