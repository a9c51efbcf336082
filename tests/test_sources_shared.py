"""Loads and deletes of one source from two `membot` processes on one database and one Milvus server, on SQLite
and on PostgreSQL: nothing crashes, no file is ready twice, no collection is left without its source, and a
delete stopped at any step is finished by the next run. Embeddings come from the fake OpenAI server, whose
embedding requests a test can hold to keep a load mid-way."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient

from bot.container import Container
from tests.conftest import ROOT, make_settings
from tests.fakes import FakeOpenAI

TEXT = "Memory hierarchies let a language model page facts in and out of its context window. " * 30


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path, milvus_server: str) -> Iterator[dict[str, Any]]:
    database = (f"sqlite:///{tmp_path / 'shared.db'}" if request.param == "sqlite"
                else request.getfixturevalue("fresh_pg_url"))
    milvus = MilvusClient(uri=milvus_server)
    for name in milvus.list_collections():  # the server is the session's; its names repeat across databases
        milvus.drop_collection(name)
    with FakeOpenAI() as fake:
        yield {"fake": fake, "milvus": milvus, "home": tmp_path / "home", "vars": {
            "MEMBOT_DATABASE_URL": database, "MEMBOT_MILVUS_URI": milvus_server,
            "MEMBOT_EMBEDDING_PROVIDER": "openai", "MEMBOT_EMBEDDING_MODEL": "fake-embedding",
            "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test"}}
    milvus.close()


def files(root: Path, *names: str, text: str = TEXT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_text(f"{name}: {text}")
    return root


def start(env: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=ROOT, text=True,
                            env={**os.environ, "MEMBOT_HOME": str(env["home"]), **env["vars"]},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def load(env: dict[str, Any], name: str, folder: Path) -> tuple[int, str]:
    return finish(start(env, "load", "directory", "--name", name, "--input-dir", str(folder)))


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err


def wait_held(fake: FakeOpenAI, count: int = 1) -> None:
    deadline = time.monotonic() + 120
    while fake.held < count:
        assert time.monotonic() < deadline, "no load reached its embedding step"
        time.sleep(0.1)


def container(env: dict[str, Any]) -> Container:
    return Container(make_settings(env["home"], **env["vars"]))


def check_consistent(env: dict[str, Any]) -> dict[str, int]:
    """Every ready file once; every collection owned by a source and holding exactly its ready passages."""
    with container(env) as c:
        owned = {}
        for summary in c.catalog.summaries("local"):
            docs = c.catalog.documents(int(summary.source.id or 0))
            names = [d.file_name for d in docs]
            assert len(names) == len(set(names)), names
            owned[c.passages.source_collection(int(summary.source.id or 0))] = summary.passages
        collections = set(env["milvus"].list_collections())
        assert {n for n in collections if "_src_" in n} <= set(owned), collections
        for name, passages in owned.items():
            assert c.passages.count(name) == passages
        return {s.source.name: s.files for s in c.catalog.summaries("local")}


def test_two_loads_at_once_on_a_fresh_database(env: dict[str, Any], tmp_path: Path) -> None:
    """Also issue 17's "table document already exists": both create the schema and the source together."""
    folder = files(tmp_path / "docs", "a.txt", "b.txt", "c.txt")
    procs = [start(env, "load", "directory", "--name", "notes", "--input-dir", str(folder)) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    assert check_consistent(env) == {"notes": 3}


def test_first_load_survives_a_failing_load_of_the_same_new_name(env: dict[str, Any], tmp_path: Path) -> None:
    fake = env["fake"]
    good = files(tmp_path / "good", "paper.txt")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_text("   ")
    fake.hold_embeddings(after=1)  # the first load's dimension probe passes; its passages wait
    first = start(env, "load", "directory", "--name", "fresh", "--input-dir", str(good))
    wait_held(fake)
    fake.hold_embeddings(after=1)  # the second load's probe passes too
    code, out = finish(start(env, "load", "directory", "--name", "fresh", "--input-dir", str(bad)))
    assert code == 1 and "empty" in out  # the second load fails while the first holds its source
    fake.release_embeddings()
    code, out = finish(first)
    assert code == 0, out
    assert check_consistent(env) == {"fresh": 1}


def test_delete_during_a_load_leaves_no_orphan_collection(env: dict[str, Any], tmp_path: Path) -> None:
    fake = env["fake"]
    code, out = load(env, "doomed", files(tmp_path / "one", "a.txt"))
    assert code == 0, out
    fake.hold_embeddings(after=1)
    loading = start(env, "load", "directory", "--name", "doomed", "--input-dir", str(files(tmp_path / "two", "b.txt")))
    wait_held(fake)
    code, out = finish(start(env, "sources", "delete", "doomed", "-y"))
    assert code == 0 and "Deleted source doomed" in out, out
    fake.release_embeddings()
    code, out = finish(loading)
    assert "deleted while it loaded" in out, out
    assert check_consistent(env) == {}
    assert [n for n in env["milvus"].list_collections() if "_src_" in n] == []


@pytest.mark.parametrize("step", ["marked", "dropped"])
def test_a_delete_stopped_at_any_step_is_finished_by_the_next_run(env: dict[str, Any], tmp_path: Path,
                                                                  step: str) -> None:
    code, out = load(env, "torn", files(tmp_path / "t", "a.txt"))
    assert code == 0, out
    with container(env) as c:  # the delete's first steps, then the process "dies"
        source = c.catalog.get("local", "torn")
        assert c.catalog.mark_deleting(int(source.id or 0))
        if step == "dropped":
            c.passages.drop(c.passages.source_collection(int(source.id or 0)))
    listed = finish(start(env, "sources", "list"))
    assert listed[0] == 0 and "torn" not in listed[1]
    code, out = load(env, "other", files(tmp_path / "o", "b.txt"))
    assert code == 0, out
    assert check_consistent(env) == {"other": 1}
    with container(env) as c:
        assert c.catalog.find("local", "torn") is None and c.catalog.deleting() == []
