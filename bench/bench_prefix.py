"""Prompt-prefix reuse: how much of each request a server's prompt cache can reuse from the request before it.

    python bench/bench_prefix.py [--turns 24] [--window 8192]

A scripted conversation (replies, searches with a heartbeat, core memory edits, a forgotten heartbeat) runs
through the real loop, the real `openai` client and the fake OpenAI server. Each request is flattened the way
chat templates do (tool schemas, then each message's role, content and tool calls); the share of its tokens
(the offline counter the context window uses) that equal the previous request's start is its reuse. Pairs are
split into steps within a turn and first steps of a turn against the previous turn's last step; summary
requests are left out. Goals: >= 90% within a turn, >= 80% across turns.
Writes bench/results/bench_prefix-<time>.json and prints the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.context import count_tokens  # noqa: E402
from agent.loop import Incoming  # noqa: E402
from agent.memory.core import Speaker  # noqa: E402
from bot.container import Container  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from tests.fakes import FakeOpenAI, reply, tool_call  # noqa: E402

ANN, BOB = Speaker("U1", "Ann"), Speaker("U2", "Bob")


def turn_script(n: int) -> tuple[Speaker, str, list[Any]]:
    """Turn n: who speaks, what, and the model's answers for its steps (four patterns in rotation)."""
    who = (ANN, BOB)[n % 2]
    kind = n % 4
    if kind == 0:
        return who, f"Quick question {n}: how are things?", [tool_call("send_message", message=f"Fine, thanks ({n}).")]
    if kind == 1:
        return who, f"What did we say about topic {n - 1}?", [
            reply("Looking it up.", [("conversation_search", {"query": f"topic {n - 1}", "request_heartbeat": True})]),
            tool_call("send_message", message=f"We talked about topic {n - 1} briefly.")]
    if kind == 2:
        return who, f"Remember that my favourite number is {n}.", [
            tool_call("core_memory_append", name="human", content=f"Favourite number {n}.", request_heartbeat=True),
            tool_call("send_message", message=f"Noted: {n}.")]
    return who, f"Search the chat for 'number {n - 1}'.", [
        tool_call("conversation_search", query=f"number {n - 1}"),  # heartbeat forgotten: the loop nudges
        tool_call("send_message", message="Found it in our chat.")]


def flatten(request: dict[str, Any]) -> str:
    """A request as a chat template lays it out: tool schemas first (as llama.cpp and Ollama do), then messages."""
    parts = [json.dumps(request.get("tools") or [], sort_keys=True)]
    for m in request["messages"]:
        calls = json.dumps(m.get("tool_calls"), sort_keys=True) if m.get("tool_calls") else ""
        parts.append(f"<|{m['role']}|>{m.get('content') or ''}{calls}<|end|>")
    return "".join(parts)


def reuse(previous: str, current: str) -> float:
    shared = 0
    for a, b in zip(previous, current):
        if a != b:
            break
        shared += 1
    return count_tokens(current[:shared]) / count_tokens(current)


def run(turns: int, window: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as fake:
        env = {"MEMBOT_HOME": tmp, "HOME": tmp, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "bench",
               "MEMBOT_LLM_MODEL": "fake-model", "MEMBOT_CONTEXT_WINDOW": str(window)}
        marks: list[tuple[int, int]] = []  # each turn's first and last request index
        with Container(load_settings(env)) as c:
            agent_id = int(c.agents.open("local", "bench").id or 0)
            for n in range(turns):
                who, text, answers = turn_script(n)
                fake.script(*answers)
                start = len(fake.chat_requests)
                result = c.agents.send(agent_id, Incoming(text, who))
                assert result.replies, result.notice
                marks.append((start, len(fake.chat_requests) - 1))
        requests = fake.chat_requests
    within: list[float] = []
    across: list[float] = []
    last: str | None = None
    for first, end in marks:
        steps = [flatten(r) for r in requests[first:end + 1] if r.get("tools")]  # summaries left out
        if last is not None and steps:
            across.append(reuse(last, steps[0]))
        within += [reuse(a, b) for a, b in zip(steps, steps[1:])]
        last = steps[-1] if steps else last
    summaries = sum(1 for r in requests if not r.get("tools"))
    return {"turns": turns, "window": window, "requests": len(requests), "summaries": summaries,
            "within": within, "across": across}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=24)
    parser.add_argument("--window", type=int, default=8192)
    args = parser.parse_args()
    out = run(args.turns, args.window)
    rows = []
    for name, values, goal in (("within a turn", out["within"], 0.9), ("across turns", out["across"], 0.8)):
        mean, low = statistics.mean(values), min(values)
        rows.append({"pairs": name, "n": len(values), "mean": mean, "min": low, "goal": goal, "met": mean >= goal})
        print(f"{name:14} pairs {len(values):3}  mean {mean:6.1%}  min {low:6.1%}  goal {goal:.0%}: "
              f"{'met' if mean >= goal else 'NOT met'}")
    print(f"{out['requests']} requests, {out['summaries']} summaries, window {out['window']}")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    record = {"when": stamp, "cpus": os.cpu_count(), "load": os.getloadavg(), "rows": rows, **out}
    (results / f"bench_prefix-{stamp}.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
