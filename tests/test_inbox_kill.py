"""kill -9 of a real `membot serve slack` process while its turn waits for the model: the other process (on the
same database) tells the person, once, that the question was not answered, and the channel's agent goes on
answering. Two real processes in HTTP mode against the fake Slack; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.inbox import APOLOGY
from tests.conftest import ROOT, free_port
from tests.fakes import FakeOpenAI, delay
from tests.fakes.slack_server import FakeSlack
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
