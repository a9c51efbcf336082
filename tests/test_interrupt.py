"""Interrupted loads: Ctrl-C (SIGINT) and kill -9 of a real `python -m bot load directory` process leave no half
document or source visible, and the same command run again loads every file exactly once.

Milvus Lite allows one process per path, so the test opens the stores only after the load process has exited.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, select

from agent.archival.catalog import Catalog
from agent.db.models import Document
from agent.errors import NotFound
from agent.loading.inputs import InputFile, collect_files
from agent.loading.loader import LoadProgress
from bot.container import Container
from tests.conftest import ROOT, make_settings, run_cli

WORDS = ("harbour ledger beacon signal lantern keeper anchor vessel tide current compass chart voyage cargo "
         "manifest dock crane pier buoy channel").split()
Rows = list[tuple[int, str, str]]  # (document id, file name, status)

# Runs the real CLI, but sends itself a signal (SIGKILL or SIGINT) right after the Nth insert into Milvus was
# written and flushed, before the catalog marks that document ready: the worst moment to be stopped.
SIGNAL_AFTER_INSERT = """
import os, signal, sys
from agent.archival.milvus_store import PassageStore
real, calls, at = PassageStore.insert, [0], int(os.environ["SIGNAL_AFTER_INSERT"])
def insert(self, collection, rows):
    written = real(self, collection, rows)
    calls[0] += 1
    if calls[0] == at:
        os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL"]))
    return written
PassageStore.insert = insert
sys.argv = ["membot", *sys.argv[1:]]
from bot.cli import main
main()
"""

# Runs the real CLI, but is killed (SIGKILL) while Milvus Lite writes the index file of a freshly flushed segment,
# after the first bytes went to disk: what kill -9 (or a power cut) at that moment leaves behind.
KILL_WRITING_INDEX = """
import os, signal, sys
from milvus_lite.index import brute_force
real_save, saves = brute_force.BruteForceIndex.save, [0]
def save(self, path):
    saves[0] += 1
    if saves[0] == 1:
        with open(path, "wb") as f:
            f.write(b"\\x93NUMPY")
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(self, path)
brute_force.BruteForceIndex.save = save
sys.argv = ["membot", *sys.argv[1:]]
from bot.cli import main
main()
"""


def make_corpus(directory: Path, files: int, sentences: int) -> dict[str, str]:
    """Text files f00.txt... each naming its own marker once; returns file name -> marker."""
    directory.mkdir(parents=True, exist_ok=True)
    markers = {}
    for i in range(files):
        rng = np.random.default_rng(100 + i)
        marker = f"MARKER{i:02d}QZ"
        lines = [f"File {i} is the one that names {marker}."]
        lines += [" ".join(rng.choice(WORDS, 10)).capitalize() + f", entry {i}-{n}." for n in range(sentences)]
        (directory / f"f{i:02d}.txt").write_text("\n".join(lines))
        markers[f"f{i:02d}.txt"] = marker
    return markers


def catalog_rows(home: Path) -> Rows:
    """The documents table, read with plain sqlite3 while (or after) the load process writes it."""
    db = home / "membot.db"
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(str(db), timeout=5)
        try:
            return [(int(i), str(n), str(s)) for i, n, s in
                    conn.execute("SELECT id, file_name, status FROM document ORDER BY id").fetchall()]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the tables are not created yet, or a writer holds a lock for a moment
        return []


def start_load(home: Path, corpus: Path, *, script: str | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env or {})}
    args = ["load", "directory", "--name", "big", "--input-dir", str(corpus)]
    cmd = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "bot", *args]
    # A session of its own, like a job in a terminal: Ctrl-C signals its whole process group.
    return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_until(proc: subprocess.Popen[str], home: Path, ready: Callable[[Rows], bool], timeout: float = 300) -> Rows:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = catalog_rows(home)
        if ready(rows):
            return rows
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the load finished before it could be interrupted (rc {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.002)
    proc.kill()
    pytest.fail("the load never reached the point to interrupt it")


def mid_load(rows: Rows) -> bool:
    """At least one file is fully loaded and another is being embedded or written."""
    statuses = [s for _, _, s in rows]
    return "ready" in statuses and "loading" in statuses


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def documents(c: Container) -> list[Document]:
    with Session(c.engine) as s:
        return list(s.exec(select(Document).order_by(Document.id)).all())


def stored_document_ids(c: Container) -> set[int]:
    source = c.catalog.find("local", "big")
    if source is None:
        return set()
    return {int(d) for d in c.passages.read_all(c.passages.source_collection(int(source.id or 0))).document_ids}


def assert_visible_state(c: Container, markers: dict[str, str]) -> set[str]:
    """What a person can see holds only fully loaded files; returns their names."""
    ready = {d.file_name for d in documents(c) if d.status == "ready"}
    summaries = c.sources.summaries("local")
    if not ready:
        assert summaries == []
        with pytest.raises(NotFound, match="No source named 'big'"):
            c.sources.search("local", ["big"], "harbour")
        return ready
    [summary] = summaries
    shown = {d.file_name for d in c.sources.show("local", "big")[1]}
    assert shown == ready and summary.files == len(ready)
    assert summary.passages == sum(d.passage_count for d in documents(c) if d.status == "ready")
    for name, marker in markers.items():
        found = c.sources.search("local", ["big"], marker, k=10, mode="keyword")
        assert found.total == (1 if name in ready else 0), (name, found.total)
        hybrid = c.sources.search("local", ["big"], f"the one that names {marker}", k=50).hits
        assert {h.file_name for h in hybrid} <= ready
    return ready


def assert_everything_loaded_once(c: Container, markers: dict[str, str]) -> None:
    docs = documents(c)
    assert sorted((d.file_name, d.status) for d in docs) == [(n, "ready") for n in sorted(markers)]
    source = c.catalog.get("local", "big")
    data = c.passages.read_all(c.passages.source_collection(int(source.id or 0)))
    assert len(set(data.ids.tolist())) == len(data.ids)
    counted = {int(i): int((data.document_ids == i).sum()) for i in set(data.document_ids.tolist())}
    assert counted == {d.id: d.passage_count for d in docs}
    assert c.catalog.summary(source).passages == len(data.ids)
    assert [s.source.name for s in c.sources.summaries("local")] == ["big"]
    for marker in markers.values():
        assert c.sources.search("local", ["big"], marker, k=10, mode="keyword").total == 1


# real signals from outside -------------------------------------------------------------------------------
def test_ctrl_c_mid_load_keeps_nothing_half_loaded_and_the_rerun_finishes(home: Path, tmp_path: Path,
                                                                          embedder) -> None:
    corpus = tmp_path / "corpus"
    markers = make_corpus(corpus, files=4, sentences=60)
    proc = start_load(home, corpus)
    wait_until(proc, home, mid_load)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    rc, out, err = finish(proc)
    assert rc == 130, (out, err)
    assert "Interrupted. Nothing half-loaded was kept; run the same command again to finish." in err
    assert "Stopping: the file being loaded is taken back" in err  # the first Ctrl-C stops between steps
    assert "Traceback" not in err and "Loaded" not in out

    after = catalog_rows(home)
    assert [s for _, _, s in after] == ["ready"] * len(after), after  # Ctrl-C took its unfinished file back
    with Container(make_settings(home), embedder=embedder) as c:
        ready = assert_visible_state(c, markers)
        assert 1 <= len(ready) < len(markers)
        assert stored_document_ids(c) == {d.id for d in documents(c)}  # no stray passages either

    rerun = run_cli(home, "load", "directory", "--name", "big", "--input-dir", str(corpus))
    assert rerun.returncode == 0, rerun.stderr
    left = len(markers) - len(ready)
    assert f"and {left} documents from big ({len(ready)} file(s) already loaded, nothing added)" in rerun.stdout
    with Container(make_settings(home), embedder=embedder) as c:
        assert_everything_loaded_once(c, markers)


def test_a_second_ctrl_c_quits_at_once_and_the_rerun_cleans_up(home: Path, tmp_path: Path, embedder) -> None:
    corpus = tmp_path / "corpus"
    markers = make_corpus(corpus, files=4, sentences=400)  # files long enough that the first stop takes a while
    proc = start_load(home, corpus)
    wait_until(proc, home, mid_load)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # impatient: Ctrl-C twice
    rc, out, err = finish(proc)
    assert rc == 130, (out, err)
    assert "Quit. The unfinished file is removed by the next load" in err and "Traceback" not in err
    assert [s for _, _, s in catalog_rows(home)].count("loading") <= 1  # like kill -9: maybe a row left...
    with Container(make_settings(home), embedder=embedder) as c:
        ready = assert_visible_state(c, markers)  # ...but nothing of it visible
    rerun = run_cli(home, "load", "directory", "--name", "big", "--input-dir", str(corpus))
    assert rerun.returncode == 0, rerun.stderr
    assert f"({len(ready)} file(s) already loaded, nothing added)" in rerun.stdout
    with Container(make_settings(home), embedder=embedder) as c:
        assert_everything_loaded_once(c, markers)


def test_kill_9_mid_load_hides_the_half_file_and_the_rerun_cleans_up(home: Path, tmp_path: Path,
                                                                      embedder) -> None:
    corpus = tmp_path / "corpus"
    markers = make_corpus(corpus, files=4, sentences=60)
    proc = start_load(home, corpus)
    wait_until(proc, home, mid_load)
    os.killpg(proc.pid, signal.SIGKILL)
    rc, _, err = finish(proc)
    assert rc == -signal.SIGKILL, err

    after = catalog_rows(home)
    assert [s for _, _, s in after].count("loading") == 1, after  # no chance to clean up: the row stays...
    with Container(make_settings(home), embedder=embedder) as c:
        ready = assert_visible_state(c, markers)  # ...but nothing of it is visible
        assert 1 <= len(ready) < len(markers)

    with Container(make_settings(home), embedder=embedder) as c:  # the same load again, in this process
        files, _ = collect_files([], str(corpus), False, [".txt"])
        report = c.loader.load("local", "big", files)
        assert sorted(o.name for o in report.of("unchanged")) == sorted(ready)
        assert_everything_loaded_once(c, markers)


# a signal at the worst moment: rows written, document not yet marked ready ---------------------------------
@pytest.mark.parametrize(("signame", "at_insert"), [("SIGKILL", 1), ("SIGKILL", 2), ("SIGINT", 2)],
                         ids=["kill-9-first-file", "kill-9-second-file", "ctrl-c-second-file"])
def test_signal_right_after_rows_are_written(home: Path, tmp_path: Path, embedder, signame: str,
                                             at_insert: int) -> None:
    corpus = tmp_path / "corpus"
    markers = make_corpus(corpus, files=3, sentences=30)
    proc = start_load(home, corpus, script=SIGNAL_AFTER_INSERT,
                      env={"SIGNAL_AFTER_INSERT": str(at_insert), "SIGNAL": signame})
    rc, out, err = finish(proc)
    done = [(f"f{i:02d}.txt", "ready") for i in range(at_insert - 1)]
    rows = catalog_rows(home)
    with Container(make_settings(home), embedder=embedder) as c:
        if signame == "SIGINT":
            assert rc == 130 and "Interrupted. Nothing half-loaded was kept" in err and "Traceback" not in err, err
            assert [(n, s) for _, n, s in rows] == done  # Ctrl-C took back the rows it had written
            assert stored_document_ids(c) == {i for i, _, _ in rows}
        else:
            assert rc == -signal.SIGKILL, err
            assert [(n, s) for _, n, s in rows] == done + [(f"f{at_insert - 1:02d}.txt", "loading")]
            assert rows[-1][0] in stored_document_ids(c)  # its passages really are in Milvus...
        ready = assert_visible_state(c, markers)  # ...and nobody sees them
        assert len(ready) == at_insert - 1

        # The same load again (in this process, with the same model) removes the half file and loads the rest.
        files, _ = collect_files([], str(corpus), False, [".txt"])
        report = c.loader.load("local", "big", files)
        assert [o.status for o in report.outcomes] == ["unchanged"] * (at_insert - 1) + ["loaded"] * (4 - at_insert)
        assert_everything_loaded_once(c, markers)


def test_kill_9_while_milvus_lite_writes_an_index_file(home: Path, tmp_path: Path, embedder) -> None:
    """A crash that leaves Milvus Lite a cut-off index file must not break the source for good: the next load
    and every search still work."""
    corpus = tmp_path / "corpus"
    markers = make_corpus(corpus, files=3, sentences=30)
    proc = start_load(home, corpus, script=KILL_WRITING_INDEX)
    rc, _, err = finish(proc)
    assert rc == -signal.SIGKILL, err
    cut = list((home / "milvus.db").rglob("*.idx"))
    assert cut and min(f.stat().st_size for f in cut) < 16  # the crash really left a cut-off index file

    with Container(make_settings(home), embedder=embedder) as c:
        files, _ = collect_files([], str(corpus), False, [".txt"])
        c.loader.load("local", "big", files)
        assert_everything_loaded_once(c, markers)
    with Container(make_settings(home), embedder=embedder) as c:  # and again after a restart
        assert_everything_loaded_once(c, markers)


# KeyboardInterrupt at exact points, in-process -----------------------------------------------------------
def test_keyboard_interrupt_during_embedding_or_after_the_insert(container: Container,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.archival.milvus_store import PassageStore

    first = InputFile.from_bytes("kept.txt", b"The anchor chain was checked on Tuesday: KEPTFILE-ANCHOR.")
    container.loader.load("local", "big", [first])

    class CtrlCWhileEmbedding(LoadProgress):
        def advanced(self, passages: int) -> None:
            raise KeyboardInterrupt

    text = ("CUTFILEMARK opens the interrupted file. "
            + " ".join(f"Line {n} of the cut file is plain filler." for n in range(120))).encode()
    with pytest.raises(KeyboardInterrupt):
        container.loader.load("local", "big", [InputFile.from_bytes("cut.txt", text)], CtrlCWhileEmbedding())
    assert [(d.file_name, d.status) for d in documents(container)] == [("kept.txt", "ready")]

    real_insert = PassageStore.insert

    def insert_then_ctrl_c(self: PassageStore, collection: str, rows) -> int:  # type: ignore[no-untyped-def]
        real_insert(self, collection, rows)
        raise KeyboardInterrupt

    monkeypatch.setattr(PassageStore, "insert", insert_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        container.loader.load("local", "big", [InputFile.from_bytes("cut.txt", text)])
    with pytest.raises(KeyboardInterrupt):
        container.loader.load("local", "new-source", [InputFile.from_bytes("cut.txt", text)])
    monkeypatch.setattr(PassageStore, "insert", real_insert)

    real_begin = Catalog.begin_document

    def ctrl_c_as_the_row_is_recorded(self: Catalog, *args):  # type: ignore[no-untyped-def]
        real_begin(self, *args)
        raise KeyboardInterrupt  # committed, but the loader never learnt the row's id

    monkeypatch.setattr(Catalog, "begin_document", ctrl_c_as_the_row_is_recorded)
    with pytest.raises(KeyboardInterrupt):
        container.loader.load("local", "big", [InputFile.from_bytes("cut.txt", text)])
    monkeypatch.setattr(Catalog, "begin_document", real_begin)

    assert [(d.file_name, d.status) for d in documents(container)] == [("kept.txt", "ready")]
    assert stored_document_ids(container) == {documents(container)[0].id}
    assert container.catalog.find("local", "new-source") is None
    assert [s.source.name for s in container.sources.summaries("local")] == ["big"]
    assert container.sources.search("local", ["big"], "CUTFILEMARK", mode="keyword").total == 0

    report = container.loader.load("local", "big", [first, InputFile.from_bytes("cut.txt", text)])
    assert [o.status for o in report.outcomes] == ["unchanged", "loaded"]
    assert container.sources.search("local", ["big"], "CUTFILEMARK", mode="keyword").total == 1


def test_kill_right_after_an_archival_insert_leaves_the_agent_searchable(home: Path, embedder, fake) -> None:
    """kill -9 of `membot run` right after a turn's archival_memory_insert reached Milvus: the turn never landed,
    but the agent's embedding model was recorded first, so its archival memory stays searchable."""
    from agent.db.models import Agent, Message
    from tests.conftest import llm_env
    from tests.fakes import tool_call

    fake.script(tool_call("send_message", message="Hello."),
                tool_call("archival_memory_insert", content="The harbour gate code is 7319.", request_heartbeat=True),
                tool_call("send_message", message="Saved."))
    env = {**os.environ, "MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", **llm_env(fake),
           "SIGNAL_AFTER_INSERT": "1", "SIGNAL": "SIGKILL"}
    done = subprocess.run([sys.executable, "-c", SIGNAL_AFTER_INSERT, "run", "--agent", "keeper"], cwd=ROOT,
                          env=env, input="Remember the gate code 7319.\n", capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with Container(make_settings(home, **llm_env(fake)), embedder=embedder) as c:
        with Session(c.engine) as s:
            agent = s.exec(select(Agent).where(Agent.name == "keeper")).one()
            said = s.exec(select(Message.content).where(Message.agent_id == agent.id)).all()
        assert agent.embedding_model == embedder.model and agent.embedding_dim == embedder.dim
        assert not any("7319" in text for text in said)  # the killed turn left no messages
        page = c.agents.search_archival(int(agent.id or 0), "harbour gate code")
        assert page.total >= 1 and "7319" in page.hits[0].text
