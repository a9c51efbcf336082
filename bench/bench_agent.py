"""Agent-core benchmark: prompt tokens per turn by part, and the time our code adds to a turn.

    python bench/bench_agent.py [--rounds 10]

(1) A fixed 20-turn scripted conversation against the fake OpenAI server (real `openai` client, real SQLite,
Milvus Lite and local embeddings): the prompt tokens of every model call, split into system prompt, tool
schemas, memory blocks and history (TurnResult.prompt_parts, the same offline counter the context window uses),
compared with MemGPT 0.3's system prompt alone.
(2) The same conversation repeated `--rounds` times with the fake answering at once: each turn's wall time minus
the time spent inside ChatModel.complete (the openai client, HTTP and the fake), i.e. what our code adds.
Writes bench/results/bench_agent-<time>.json and prints the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.context import count_tokens  # noqa: E402
from agent.llm import ChatModel, Completion, OpenAIChat  # noqa: E402
from agent.loading.inputs import InputFile  # noqa: E402
from agent.loop import Incoming  # noqa: E402
from agent.memory.core import Speaker  # noqa: E402
from bot.container import Container  # noqa: E402
from bot.settings import load_settings, reveal  # noqa: E402
from tests.fakes import FakeOpenAI, openai_server, reply, tool_call  # noqa: E402

MEMGPT_03_SYSTEM_TOKENS = 1200  # memgpt_chat system prompt of MemGPT 0.3, without memory or function schemas
PARTS = ("system", "tools", "memory", "history")
ANN, BOB = Speaker("U1", "Ann"), Speaker("U2", "Bob")

# (speaker, message, the model's first tool call or None for a direct reply)
SCRIPT: list[tuple[Speaker, str, tuple[str, dict[str, Any]] | None]] = [
    (ANN, "Hi, I'm Ann. I run the ops team at Harbor Labs.",
     ("core_memory_append", {"name": "human", "content": "Ann runs the ops team at Harbor Labs."})),
    (ANN, "What can you help me with?", None),
    (ANN, "Please remember: the staging server is stg-42.harbor.internal.",
     ("archival_memory_insert", {"content": "The staging server is stg-42.harbor.internal."})),
    (ANN, "What does the runbook say about restarting the queue?",
     ("archival_memory_search", {"query": "restart the queue"})),
    (ANN, "Is there more on that?", ("archival_memory_search", {"query": "restart the queue", "page": 2})),
    (ANN, "I prefer short answers, by the way.",
     ("core_memory_append", {"name": "human", "content": "Prefers short answers."})),
    (BOB, "Hello, Bob here from billing.", ("core_memory_append", {"name": "human", "content": "Bob: billing."})),
    (BOB, "How do I rotate the billing API key?", ("archival_memory_search", {"query": "rotate API key",
                                                                              "source": "runbook"})),
    (BOB, "Thanks, that works.", None),
    (ANN, "What did I tell you about staging?", ("archival_memory_search", {"query": "staging server"})),
    (ANN, "What did we talk about earlier?", ("conversation_search", {"query": "queue"})),
    (ANN, "Anything from today about billing?", ("conversation_search_date", {"start_date": "2000-01-01",
                                                                              "end_date": "2100-01-01"})),
    (ANN, "Our on-call rotation changes every Monday.",
     ("archival_memory_insert", {"content": "The on-call rotation changes every Monday."})),
    (ANN, "Great.", None),
    (BOB, "Do you remember what I work on?", None),
    (BOB, "The invoice run is on the 3rd of each month.",
     ("core_memory_append", {"name": "human", "content": "Invoice run on the 3rd."})),
    (ANN, "What does the runbook say about disk alerts?", ("archival_memory_search", {"query": "disk alert"})),
    (ANN, "Rename me to Ann K. in your notes.",
     ("core_memory_replace", {"name": "human", "old_content": "Name: Ann", "new_content": "Name: Ann K."})),
    (ANN, "Summarize what you know about me.", None),
    (ANN, "Bye for now!", None),
]
RUNBOOK = {
    "queue.txt": "To restart the queue run `qctl restart --drain`; wait for the drain to finish before deploying.",
    "keys.txt": "Rotate the billing API key in the vault: `vault rotate billing/api`, then restart the billing pod.",
    "disk.txt": "Disk alerts fire at 85% full; clear old logs under /var/log/app and expand the volume if needed.",
    "deploy.txt": "Deploys go out on Tuesdays and Thursdays after the queue has been drained and checked.",
}


def model_policy(plan: dict[str, tuple[str, dict[str, Any]] | None]) -> Any:
    """The scripted model: the planned tool for each message, then a reply after the tool's result."""

    def answer(request: dict[str, Any]) -> Any:
        if not request.get("tools"):
            return reply("I talked with Ann and Bob about ops and billing.")  # a summary request
        last = request["messages"][-1]
        body = json.loads(last["content"]) if last["role"] == "user" else {}
        planned = plan.get(body.get("message", "")) if body.get("type") == "user_message" else None
        if planned is not None:
            name, args = planned
            return reply("Let me check my memory first.", [(name, {**args, "request_heartbeat": True})])
        return tool_call("send_message", message="Here you go: a short, helpful answer.")

    return answer


class TimedModel:
    """A ChatModel that adds up the time spent inside the real one (openai client, HTTP, the fake)."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.spent = 0.0

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 on_draft: Any = None) -> Completion:
        start = time.perf_counter()
        try:
            return self.inner.complete(messages, tools, on_draft)
        finally:
            self.spent += time.perf_counter() - start


@dataclass
class TurnRecord:
    kind: str
    calls: int
    parts: dict[str, int]  # summed over the turn's model calls
    wall: float
    model: float
    per_call: list[dict[str, int]] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        return self.wall - self.model


def run_turn(c: Container, timed: TimedModel, agent_id: int, speaker: Speaker, text: str,
             planned: tuple[str, dict[str, Any]] | None) -> TurnRecord:
    timed.spent = 0.0
    start = time.perf_counter()
    result = c.agents.send(agent_id, Incoming(text, speaker))
    wall = time.perf_counter() - start
    if result.failed or not result.replies:
        raise RuntimeError(f"turn {text!r} failed: {result.notice}")
    parts = {p: sum(call[p] for call in result.prompt_parts) for p in PARTS}
    return TurnRecord(planned[0] if planned else "reply", len(result.prompt_parts), parts, wall, timed.spent,
                      list(result.prompt_parts))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def token_table(records: list[TurnRecord]) -> dict[str, Any]:
    print(f"{'turn':>4} {'kind':<26} {'calls':>5} " + " ".join(f"{p:>8}" for p in PARTS) + f" {'total':>8}")
    for n, r in enumerate(records, start=1):
        total = sum(r.parts.values())
        print(f"{n:>4} {r.kind:<26} {r.calls:>5} " + " ".join(f"{r.parts[p]:>8}" for p in PARTS) + f" {total:>8}")
    turn_mean = {p: statistics.mean(r.parts[p] for r in records) for p in PARTS}
    calls = [c for r in records for c in r.per_call]
    call_mean = {p: statistics.mean(c[p] for c in calls) for p in PARTS}
    print(f"{'mean per turn':<37}" + " ".join(f"{turn_mean[p]:>8.0f}" for p in PARTS)
          + f" {sum(turn_mean.values()):>8.0f}")
    print(f"{'mean per model call':<37}" + " ".join(f"{call_mean[p]:>8.0f}" for p in PARTS)
          + f" {sum(call_mean.values()):>8.0f}")
    return {"turns": [{"kind": r.kind, "calls": r.calls, **r.parts} for r in records],
            "mean_per_turn": turn_mean, "mean_per_call": call_mean,
            "calls_per_turn": statistics.mean(r.calls for r in records)}


def overhead_summary(records: list[TurnRecord]) -> dict[str, Any]:
    def stats(rows: list[TurnRecord]) -> dict[str, float]:
        ours = [r.overhead * 1000 for r in rows]
        model = [r.model * 1000 for r in rows]
        return {"turns": len(rows), "ours_p50_ms": percentile(ours, 50), "ours_p95_ms": percentile(ours, 95),
                "model_p50_ms": percentile(model, 50), "model_p95_ms": percentile(model, 95),
                "ours_per_call_p50_ms": percentile([r.overhead * 1000 / r.calls for r in rows], 50)}

    out = {"all": stats(records)}
    for kind in sorted({r.kind for r in records}):
        out[kind] = stats([r for r in records if r.kind == kind])
    print(f"\n{'turn kind':<26} {'turns':>5} {'ours p50':>9} {'ours p95':>9} {'model p50':>10} {'model p95':>10}  (ms)")
    for kind, s in out.items():
        print(f"{kind:<26} {s['turns']:>5} {s['ours_p50_ms']:>9.1f} {s['ours_p95_ms']:>9.1f} "
              f"{s['model_p50_ms']:>10.1f} {s['model_p95_ms']:>10.1f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="times the 20-turn script runs for the timings")
    args = parser.parse_args()
    # The fake writes headers and body in two sends; without this each answer waits for a delayed ACK (~40 ms).
    openai_server._Handler.disable_nagle_algorithm = True
    plan = {text: planned for _, text, planned in SCRIPT}
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(default=model_policy(plan)) as fake:
        settings = load_settings({"MEMBOT_HOME": tmp, "HOME": tmp, "OPENAI_BASE_URL": fake.base_url,
                                  "OPENAI_API_KEY": "test", "MEMBOT_LLM_MODEL": "fake-model"})
        timed = TimedModel(OpenAIChat(settings.llm_model, reveal(settings.openai_api_key), settings.openai_base_url,
                                      settings.llm_timeout, settings.llm_retries))
        with Container(settings, model=timed) as c:
            c.loader.load("local", "runbook", [InputFile.from_bytes(n, t.encode()) for n, t in RUNBOOK.items()])
            schema_tokens = count_tokens(json.dumps(c.runner.schemas))

            def conversation(name: str) -> list[TurnRecord]:
                agent_id = int(c.agents.open("local", name).id or 0)
                c.agents.attach(agent_id, "runbook")
                return [run_turn(c, timed, agent_id, who, text, planned) for who, text, planned in SCRIPT]

            warm = conversation("warm-up")  # loads the embedder, creates collections, fills caches
            print(f"Prompt tokens of a fixed 20-turn conversation (offline count; {len(c.runner.schemas)} tools)")
            tokens = token_table(conversation("tokens"))
            sent = [r for r in fake.chat_requests if r.get("tools")][-1]
            assert count_tokens(json.dumps(sent["tools"])) == schema_tokens  # what was sent is what we counted
            system_only = tokens["mean_per_call"]["system"]
            print(f"\nTool schemas (JSON, same counter): {schema_tokens} tokens. Our system prompt without memory: "
                  f"{system_only:.0f}; with memory blocks: {system_only + tokens['mean_per_call']['memory']:.0f}. "
                  f"MemGPT 0.3's system prompt alone: ~{MEMGPT_03_SYSTEM_TOKENS}.")
            timings = [r for n in range(args.rounds) for r in conversation(f"timing-{n}")]
            overhead = overhead_summary(timings)
            del warm
    result = {"when": datetime.now(timezone.utc).isoformat(), "tool_schema_tokens": schema_tokens,
              "memgpt_03_system_tokens": MEMGPT_03_SYSTEM_TOKENS, "tokens": tokens, "overhead": overhead,
              "rounds": args.rounds, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench_agent-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"\nWrote {path}")


if __name__ == "__main__":
    main()
