"""Shared fixtures: real SQLite/PostgreSQL, real Milvus Lite (embedded and as a server), the real model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT.parent / "shared" / "data" / "memgpt_paper.pdf"
PG_ADMIN_URL = os.environ.get("MEMBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

os.environ["HF_HUB_OFFLINE"] = "1"
for var in [v for v in os.environ if v.startswith(("MEMBOT_", "SLACK_", "DISCORD_", "OPENAI_"))]:
    if var != "MEMBOT_TEST_PG":
        os.environ.pop(var)


@pytest.fixture(scope="session")
def embedder():
    """The real default model (all-MiniLM-L6-v2, int8 ONNX on onnxruntime), loaded once per test session."""
    from agent.embeddings.models import DEFAULT_MODEL, local_embedder

    return local_embedder(DEFAULT_MODEL)


def make_settings(home: Path, **overrides):
    from bot.settings import load_settings

    env = {"MEMBOT_HOME": str(home), "HOME": str(home)}
    env.update({k: str(v) for k, v in overrides.items()})
    return load_settings(env)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "membot-home"
    path.mkdir()
    return path


@pytest.fixture
def container(home: Path, embedder):
    """The composition root on SQLite and embedded Milvus Lite in a temporary home."""
    from bot.container import Container

    with Container(make_settings(home), embedder=embedder) as c:
        yield c


@pytest.fixture
def fake():
    """A fake OpenAI-compatible server on 127.0.0.1 (tests/fakes/openai_server.py), scriptable turn by turn."""
    from tests.fakes import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


def llm_env(fake) -> dict[str, str]:
    """Settings that point the real openai client at the fake."""
    return {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test", "MEMBOT_LLM_MODEL": "fake-model"}


@pytest.fixture
def clock():
    """A clock for schedules that tests move by hand, starting on Monday 2026-11-23 08:00 UTC."""
    from datetime import datetime, timezone

    from tests.fakes.timed import ManualClock

    return ManualClock(datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc))


@pytest.fixture
def world(home, fake, clock):
    """A container with schedules on the manual clock and a recording delivery (tests/fakes/timed.py)."""
    from tests.fakes.timed import World

    with World(home, fake, clock) as w:
        yield w


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session on 127.0.0.1:5432, dropped at the end."""
    from sqlalchemy import create_engine, text

    name = f"membot_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL that several processes of one test share: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A new empty PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"membot_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory) -> Iterator[str]:
    """A separate Milvus Lite server process on 127.0.0.1; yields its http:// URI."""
    port = free_port()
    data = tmp_path_factory.mktemp("milvus-server")
    log = open(data / "server.log", "wb")
    cmd = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data / "db"),
           "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"milvus-lite server exited: {(data / 'server.log').read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("milvus-lite server did not start in 60 s")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot ARGS` as a person would, with MEMBOT_HOME pointing at `home`."""
    full_env = {k: v for k, v in os.environ.items()}
    full_env.update({"MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=full_env, input=input,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def milvus_standalone(tmp_path_factory) -> Iterator[str]:
    """The real Milvus 2.3.5 standalone server (scripts/milvus-server.sh: a private network namespace with only
    loopback, bridged to 127.0.0.1); yields its http:// URI. Needs root for `ip netns`, as CI has."""
    if os.geteuid() != 0:
        pytest.skip("the real Milvus server runs in a network namespace, which needs root (CI runs as root)")
    data = tmp_path_factory.mktemp("milvus-standalone")
    script = ROOT / "scripts" / "milvus-server.sh"
    started = subprocess.run(["bash", str(script), "start", str(data)], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        raise RuntimeError(f"scripts/milvus-server.sh start failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield (data / "uri").read_text().strip()
    finally:
        subprocess.run(["bash", str(script), "stop", str(data)], capture_output=True, timeout=120)
