"""Slack adapter overhead and throughput, on the real Bolt app (started as `membot serve slack` starts it), SQLite
and Milvus Lite, against the fake Slack of the tests and the fake OpenAI model answering at once.

  overhead     one message at a time: from the fake Slack sending a mention to chat.postMessage reaching it,
               minus the model's own time (measured around each completion call): p50 / p95 / max; split into
               the core's share (the turn's SQL, Milvus and prompt work) and the adapter's (Bolt, the lane,
               the reaction, users.info, posting: everything outside ChatCore.submit)
  throughput   50 channels, every message sent at once: messages answered per second, sustained

Both in Socket Mode and in HTTP mode. Everything runs in one process on loopback, the fakes included, so the
numbers are an upper bound on what the adapter costs, not a model of Slack's network.

    python bench/bench_slack.py                     # 200 single messages, 50 channels x 10 messages
    python bench/bench_slack.py --single 50 --per-channel 4    # quick
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import agent.chat  # noqa: E402
from agent.chat import Channel, ChatCore  # noqa: E402
from agent.llm import ChatModel, Completion, OpenAIChat  # noqa: E402
from agent.loop import TurnResult  # noqa: E402
from agent.memory.core import Speaker  # noqa: E402
from bot.container import Container  # noqa: E402
from bot.run_slack import start_slack  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from tests.fakes import FakeOpenAI, openai_server, reply, tool_call  # noqa: E402
from tests.fakes.slack_server import FakeSlack  # noqa: E402


class TimedModel:
    """The real OpenAI client, with the time spent in each completion recorded as (start, end)."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 on_draft: Any = None) -> Completion:
        start = time.monotonic()
        try:
            return self.inner.complete(messages, tools, on_draft)
        finally:
            with self._lock:
                self.spans.append((start, time.monotonic()))

    def within(self, start: float, end: float) -> float:
        with self._lock:
            return sum(b - a for a, b in self.spans if a >= start and b <= end)


class TimedCore(ChatCore):
    """ChatCore with each turn's (submitted, finished) times recorded."""

    spans: list[tuple[float, float]] = []

    def submit(self, channel: Channel, speaker: Speaker, text: str, thread: str = "",
               on_event: Any = None) -> Future[TurnResult]:
        start = time.monotonic()
        future = super().submit(channel, speaker, text, thread, on_event)
        future.add_done_callback(lambda _: TimedCore.spans.append((start, time.monotonic())))
        return future


def answer_at_once(request: dict[str, Any]) -> Any:
    last = request["messages"][-1]
    if request.get("tools") and last["role"] == "user" and '"type": "user_message"' in last["content"]:
        return tool_call("send_message", message="re: " + json.loads(last["content"])["message"])
    return reply("noted")  # a heartbeat, an alert, or a summary request (no tools)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_mode(mode: str, single: int, channels: int, per_channel: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(default=answer_at_once) as model, FakeSlack() as slack:
        home = Path(tmp)
        env = {"MEMBOT_HOME": str(home), "HOME": str(home), "SLACK_BOT_TOKEN": slack.bot_token,
               "SLACK_APP_TOKEN": slack.app_token, "SLACK_SIGNING_SECRET": slack.signing_secret,
               "MEMBOT_SLACK_MODE": mode, "MEMBOT_SLACK_HOST": "127.0.0.1", "MEMBOT_SLACK_PORT": "0",
               "MEMBOT_SLACK_API_URL": slack.api_url, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "x",
               "MEMBOT_LLM_MODEL": "fake-model"}
        settings = load_settings(env)
        timed = TimedModel(OpenAIChat("fake-model", "x", model.base_url, 30, 0))
        with Container(settings, model=timed) as container:
            running = start_slack(container)
            if mode == "socket":
                slack.use_socket_mode()
            else:
                slack.use_http(running.url)
            try:
                overhead = measure_overhead(slack, timed, single)
                rate = measure_throughput(slack, mode, channels, per_channel)
            finally:
                running.close()
    return {"mode": mode, **overhead, **rate}


def measure_overhead(slack: FakeSlack, timed: TimedModel, n: int) -> dict[str, Any]:
    slack.say("U1", "CWARM", "<@UBOT> warm up")  # first contact creates the agent: not what is measured
    slack.wait_posts(1, "CWARM")
    overheads: list[float] = []
    models: list[float] = []
    adapter: list[float] = []
    for i in range(n):
        before = len(slack.posts("CSINGLE"))
        start = time.monotonic()
        slack.say("U1", "CSINGLE", f"<@UBOT> message {i}")
        posted = slack.wait_posts(before + 1, "CSINGLE")[-1]["at"]
        spent = timed.within(start, posted)
        models.append(spent)
        overheads.append(posted - start - spent)
        turn = TimedCore.spans[-1]
        adapter.append(posted - start - (turn[1] - turn[0]))
    ms = [x * 1000 for x in overheads]
    own = [x * 1000 for x in adapter]
    return {"messages": n, "overhead_p50_ms": percentile(ms, 0.5), "overhead_p95_ms": percentile(ms, 0.95),
            "overhead_max_ms": max(ms), "model_p50_ms": statistics.median(models) * 1000,
            "core_p50_ms": statistics.median(ms) - statistics.median(own),
            "adapter_p50_ms": percentile(own, 0.5), "adapter_p95_ms": percentile(own, 0.95)}


def measure_throughput(slack: FakeSlack, mode: str, channels: int, per_channel: int) -> dict[str, Any]:
    names = [f"CT{c:03d}" for c in range(channels)]
    for name in names:  # agents exist already: first contact is not what is measured
        slack.say("U1", name, "<@UBOT> hello")
    slack.wait_for(lambda: all(slack.posts(n) for n in names), 120, "warm-up answers")
    before = len(slack.posts())
    total = channels * per_channel
    start = time.monotonic()
    jobs = [(name, i) for i in range(per_channel) for name in names]
    if mode == "socket":
        for name, i in jobs:
            slack.say("U2", name, f"<@UBOT> load {i}", wait=False)
    else:
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda job: slack.say("U2", job[0], f"<@UBOT> load {job[1]}"), jobs))
    sent = time.monotonic()
    posts = slack.wait_posts(before + total, timeout=600)
    end = max(p["at"] for p in posts[before:])
    return {"channels": channels, "load_messages": total, "send_seconds": sent - start,
            "elapsed_seconds": end - start, "messages_per_second": total / (end - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single", type=int, default=200, help="messages for the overhead percentiles")
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--per-channel", type=int, default=10)
    parser.add_argument("--modes", default="socket,http")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    openai_server._Handler.disable_nagle_algorithm = True  # else every fake answer waits ~40 ms for an ACK
    agent.chat.ChatCore = TimedCore  # type: ignore[misc]  # the container builds its ChatCore from agent.chat
    results = [run_mode(m, args.single, args.channels, args.per_channel) for m in args.modes.split(",")]
    print(f"overhead = event to reply posted, minus the model's time (ms; model p50 shown apart); "
          f"throughput over {args.channels} channels x {args.per_channel} messages")
    print(f"{'mode':<7} {'p50':>7} {'p95':>7} {'max':>7} {'core p50':>9} {'adapter p50':>12} {'adapter p95':>12} "
          f"{'model p50':>10} {'msgs/s':>8}")
    for r in results:
        print(f"{r['mode']:<7} {r['overhead_p50_ms']:>7.1f} {r['overhead_p95_ms']:>7.1f} {r['overhead_max_ms']:>7.1f} "
              f"{r['core_p50_ms']:>9.1f} {r['adapter_p50_ms']:>12.1f} {r['adapter_p95_ms']:>12.1f} "
              f"{r['model_p50_ms']:>10.1f} {r['messages_per_second']:>8.1f}")
    out = ROOT / "bench" / "results" / f"bench_slack-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "results": results},
                              indent=2))
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
