"""Two real `membot serve slack` processes on one database against the fake Slack. HTTP mode: kill -9 of one
while its turn waits for the model: the other tells the person, once, that the question was not answered, and
the channel's agent goes on answering (SQLite and PostgreSQL); both behind a round-robin proxy, one channel
hammered (each mention's app_mention and message events reach different processes). Socket Mode: the two
processes' websockets share the envelopes, a retry reaches the other process, and a process that does not ack
(stopped) has its events retried to the other. Every question answered exactly once, in order, history
well-formed, no core memory edit lost (PostgreSQL and the real Milvus server; behind the proxy each question's
archival passage is on the server exactly once)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, col, select

from agent.db.models import Agent, Block, Message
from agent.inbox import APOLOGY, DONE, ROWS
from bot.container import Container
from tests.conftest import ROOT, free_port, make_settings
from tests.fakes import FakeOpenAI, delay, tool_call
from tests.fakes.slack_server import FakeSlack
from tests.test_inbox import asked, assert_well_formed, remembering_model
from tests.test_slack import model_env, short_echo, slack_env


class Served:
    """One `python -m bot serve slack` process: HTTP mode on a port of its own, or Socket Mode."""

    def __init__(self, home: Path, env: dict[str, str], mode: str = "http") -> None:
        home.mkdir(exist_ok=True)
        self.port = free_port()
        self.log = open(home / "serve.log", "w")
        full = {**os.environ, **env, "MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", "MEMBOT_SLACK_PORT":
                str(self.port)}
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "slack", "--mode", mode], cwd=ROOT,
                                     env=full, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        self.url = f"http://127.0.0.1:{self.port}/slack/events"
        self.home = home

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(self.home / 'serve.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("membot serve slack did not come up")

    def wait_connected(self, slack: FakeSlack, connections: int, timeout: float = 120) -> int:
        """Socket Mode: wait until the fake holds `connections` websockets, the newest this process's; returns
        that connection's serial number."""
        deadline = time.monotonic() + timeout
        while len(slack.connections()) < connections:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(self.home / 'serve.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("membot serve slack did not connect over Socket Mode")
            time.sleep(0.2)
        return max(slack.connections())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(default=short_echo) as fake:
        yield fake


def test_kill_9_mid_turn_the_other_process_reports_the_question_once(tmp_path: Path, database: str,
                                                                      model: FakeOpenAI) -> None:
    with FakeSlack() as slack:
        env: dict[str, Any] = {**slack_env(slack, "http"), **model_env(model), "MEMBOT_DATABASE_URL": database,
                               "MEMBOT_INBOX_LEASE_SECONDS": 2}
        env = {k: str(v) for k, v in env.items()}
        a, b = Served(tmp_path / "a", env), Served(tmp_path / "b", env)
        try:
            a.wait_ready()
            b.wait_ready()
            model.script(delay(600))  # the first turn hangs on the model
            slack.use_http(a.url)
            ts = slack.say("U1", "C1", "<@UBOT> what is   the plan\nfor Friday?")
            model.wait_for_requests(1, timeout=60)
            os.kill(a.proc.pid, signal.SIGKILL)
            a.proc.wait(30)

            [post] = slack.wait_posts(1, timeout=60)  # b takes the question over once a's lease has run out
            assert (post["channel"], post["thread_ts"]) == ("C1", ts)
            assert post["text"] == APOLOGY.format(excerpt="what is the plan for Friday?")
            time.sleep(3)  # more of b's passes (and a lease's length): nothing is posted twice
            assert len(slack.posts("C1")) == 1

            slack.use_http(b.url)  # the channel's agent is not stuck behind the lost question
            ts2 = slack.say("U1", "C1", "<@UBOT> still there?")
            posts = slack.wait_posts(2, timeout=60)
            assert (posts[1]["text"], posts[1]["thread_ts"]) == ("re: still there?", ts2)
        finally:
            for served in (a, b):
                if served.proc.poll() is None:
                    served.stop()
                else:
                    served.log.close()


class RoundRobin:
    """A tiny load balancer on 127.0.0.1: each request goes to the next backend, headers and body as they came."""

    def __init__(self, backends: list[str]) -> None:
        turn = itertools.cycle(backends)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    backend = next(turn)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(backend, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, data = answer.status, answer.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def archiving_model(request: dict[str, Any]) -> Any:
    """As remembering_model, and each question's fact also saved to archival memory (Milvus) before the answer."""
    calls = [m["tool_calls"][0]["function"]["name"] for m in request["messages"]
             if m["role"] == "assistant" and m.get("tool_calls")]
    if calls[-1:] == ["core_memory_append"]:  # the turn's heartbeat after its memory line
        q = asked(request)
        return tool_call("archival_memory_insert", content=f"archived fact of {q}", request_heartbeat=True)
    return remembering_model(request)


def archived(url: str, milvus: str, home: Path, expected: int) -> int:
    """How many passages the channel's agent has in archival memory on the Milvus server, read through a container
    on the same stores (waiting a little for the server's bounded consistency)."""
    with Container(make_settings(home, MEMBOT_DATABASE_URL=url, MEMBOT_MILVUS_URI=milvus)) as c:
        agent_id = int(c.agents.open("slack:T1", "channel:C1").id or 0)
        deadline = time.monotonic() + 15
        while (n := c.agents.memory(agent_id).archival) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        return n


def test_two_processes_behind_a_load_balancer_answer_one_channel_in_order(
        tmp_path: Path, fresh_pg_url: str, model: FakeOpenAI, milvus_standalone: str) -> None:
    model.default = archiving_model  # core memory in SQL and archival memory on the real Milvus server
    count = 8
    with FakeSlack() as slack:
        env = {k: str(v) for k, v in {**slack_env(slack, "http"), **model_env(model),
                                      "MEMBOT_DATABASE_URL": fresh_pg_url, "MEMBOT_MILVUS_URI": milvus_standalone
                                      }.items()}
        a, b = Served(tmp_path / "a", env), Served(tmp_path / "b", env)
        proxy: RoundRobin | None = None
        try:
            a.wait_ready()
            b.wait_ready()
            proxy = RoundRobin([a.url, b.url])
            slack.use_http(proxy.url)
            asked = {}
            for n in range(count):  # each acked before the next is sent
                asked[slack.say("U1", "C1", f"<@UBOT> q{n}")] = f"q{n}"
                if n % 2 == 0:  # a message not for the bot: the next mention's first event goes to the other process
                    slack.say("U2", "C1", "just chatting")
            slack.wait_posts(count, timeout=120)
            time.sleep(2)  # nothing more comes: no question is answered twice
            posts = slack.posts("C1")
            assert sorted((p["thread_ts"], p["text"]) for p in posts) == sorted(
                (ts, f"re: {q}") for ts, q in asked.items())
        finally:
            if proxy is not None:
                proxy.close()
            for served in (a, b):
                served.stop()
        both = (a.home / "serve.log").read_text() + (b.home / "serve.log").read_text()
        assert both.count("Slack: listening") == 2  # both processes served

    check_history(fresh_pg_url, [f"q{n}" for n in range(count)])
    assert archived(fresh_pg_url, milvus_standalone, tmp_path / "check", count) == count  # each saved once


def check_history(url: str, questions: list[str]) -> None:
    """The channel's stored history has the questions in order, every tool call followed by its result, every
    question's core memory line, and turns run by both processes."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as s:
            agent = s.exec(select(Agent).where(Agent.scope == "slack:T1", Agent.name == "channel:C1")).one()
            rows = list(s.exec(select(Message).where(Message.agent_id == agent.id).order_by(col(Message.id))).all())
            persona = s.exec(select(Block).where(Block.agent_id == agent.id, Block.label == "persona")).one()
            owners = set(s.exec(select(ROWS.c.owner).where(ROWS.c.status == DONE)).all())  # type: ignore[call-overload]
    finally:
        engine.dispose()
    assert [m.content for m in rows if m.role == "user" and m.kind == "message"] == questions
    assert_well_formed(rows)
    assert all(f"fact of {q}" in persona.value for q in questions)
    assert len(owners) == 2  # both processes ran turns of the one agent


def test_two_processes_in_socket_mode_answer_one_channel_once_in_order(
        tmp_path: Path, fresh_pg_url: str, model: FakeOpenAI, milvus_standalone: str) -> None:
    model.default = remembering_model
    count = 8
    with FakeSlack() as slack:
        env = {k: str(v) for k, v in {**slack_env(slack, "socket"), **model_env(model),
                                      "MEMBOT_DATABASE_URL": fresh_pg_url, "MEMBOT_MILVUS_URI": milvus_standalone
                                      }.items()}
        a = Served(tmp_path / "a", env, "socket")
        b: Served | None = None
        try:
            first = a.wait_connected(slack, 1)
            b = Served(tmp_path / "b", env, "socket")
            second = b.wait_connected(slack, 2)
            other = {first: second, second: first}
            slack.use_socket_mode(connections=2)
            slack.socket_retries(timeout=3.0)  # as Slack: an envelope not acked in 3 s is sent again, elsewhere
            asked = {}
            for n in range(count):  # round-robin over the two connections, each envelope acked before the next
                ts = slack.say("U1", "C1", f"<@UBOT> q{n}")
                asked[ts] = f"q{n}"
                if n % 2 == 0:  # a message not for the bot: the next mention's first event goes to the other process
                    slack.say("U2", "C1", "just chatting")
                if n == 3:  # Slack retries this mention's app_mention (its ack was lost) on the other connection
                    serial, envelope = events_of(slack, ts, "app_mention")[0]
                    slack.deliver("events_api", envelope["payload"], retry=1, to=other[serial])
            for ts in asked:  # each mention's app_mention and message went to different processes
                assert events_of(slack, ts, "app_mention")[0][0] != events_of(slack, ts, "message")[0][0]
            slack.wait_posts(count, timeout=120)
            time.sleep(2)  # nothing more comes, and a is idle (no question of its own in progress)

            os.kill(a.proc.pid, signal.SIGSTOP)  # a stops reading its websocket: it acks nothing
            try:
                slack.route = lambda envelope, connections: first
                ts = slack.say("U1", "C1", f"<@UBOT> q{count}")  # returns once b has acked the retries
                asked[ts] = f"q{count}"
                slack.route = None
                slack.wait_posts(count + 1, timeout=120)
            finally:
                os.kill(a.proc.pid, signal.SIGCONT)  # a reads the stale envelopes now: already answered by b
            for kind in ("app_mention", "message"):
                sent = [(serial, e["retry_attempt"], e["retry_reason"]) for serial, e in events_of(slack, ts, kind)]
                assert sent[:2] == [(first, 0, ""), (second, 1, "timeout")]
            stale = [e["envelope_id"] for kind in ("app_mention", "message") for _, e in events_of(slack, ts, kind)[:1]]
            slack.wait_for(lambda: all(e in slack.acks for e in stale), 60, "a's late acks")  # a did read them
            time.sleep(3)  # and more retries had their time: nothing is answered twice
            posts = slack.posts("C1")
            assert sorted((p["thread_ts"], p["text"]) for p in posts) == sorted(
                (ts, f"re: {q}") for ts, q in asked.items())
        finally:
            for served in (a, b):
                if served is not None:
                    served.stop()

    check_history(fresh_pg_url, [f"q{n}" for n in range(count + 1)])


def events_of(slack: FakeSlack, ts: str, kind: str) -> list[tuple[int, dict[str, Any]]]:
    """The Socket Mode envelopes that carried the `kind` event of the message `ts`: (connection, envelope)."""
    return [(serial, e) for serial, e in slack.envelopes if e["type"] == "events_api"
            and e["payload"]["event"].get("ts") == ts and e["payload"]["event"]["type"] == kind]
