"""Two real `membot serve slack` processes (HTTP mode) on one database against the fake Slack. kill -9 of one
while its turn waits for the model: the other tells the person, once, that the question was not answered, and
the channel's agent goes on answering (SQLite and PostgreSQL). Both behind a round-robin proxy, one channel
hammered (each mention's app_mention and message events reach different processes): every question answered
exactly once, in order, history well-formed, no core memory edit lost (PostgreSQL)."""

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
from tests.conftest import ROOT, free_port
from tests.fakes import FakeOpenAI, delay
from tests.fakes.slack_server import FakeSlack
from tests.test_inbox import assert_well_formed, remembering_model
from tests.test_slack import model_env, short_echo, slack_env


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


class Served:
    """One `python -m bot serve slack --mode http` process on a port of its own."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        home.mkdir(exist_ok=True)
        self.port = free_port()
        self.log = open(home / "serve.log", "w")
        full = {**os.environ, **env, "MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", "MEMBOT_SLACK_PORT":
                str(self.port)}
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "slack", "--mode", "http"], cwd=ROOT,
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


def test_two_processes_behind_a_load_balancer_answer_one_channel_in_order(tmp_path: Path, fresh_pg_url: str,
                                                                          model: FakeOpenAI) -> None:
    model.default = remembering_model
    count = 8
    with FakeSlack() as slack:
        env = {k: str(v) for k, v in {**slack_env(slack, "http"), **model_env(model),
                                      "MEMBOT_DATABASE_URL": fresh_pg_url}.items()}
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

    engine = create_engine(fresh_pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as s:
            agent = s.exec(select(Agent).where(Agent.scope == "slack:T1", Agent.name == "channel:C1")).one()
            rows = list(s.exec(select(Message).where(Message.agent_id == agent.id).order_by(col(Message.id))).all())
            persona = s.exec(select(Block).where(Block.agent_id == agent.id, Block.label == "persona")).one()
            owners = set(s.exec(select(ROWS.c.owner).where(ROWS.c.status == DONE)).all())  # type: ignore[call-overload]
    finally:
        engine.dispose()
    assert [m.content for m in rows if m.role == "user" and m.kind == "message"] == [f"q{n}" for n in range(count)]
    assert_well_formed(rows)
    assert all(f"fact of q{n}" in persona.value for n in range(count))
    assert len(owners) == 2  # both processes ran turns of the one agent
