"""The `membot` command line: load, sources list/show/delete, search and configure.

A few commands run as real subprocesses (`python -m bot` through a small probe that also reports whether a model
runtime, onnxruntime or torch, was imported); the rest run `bot.cli.main` in-process with the session's model, on
the same SQLite + Milvus Lite files. Milvus Lite allows one process per path: every in-process command closes its
stores on return.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, select

from agent.embeddings.base import Progress, normalise
from bot.cli import main
from bot.container import Container
from bot.settings import reveal
from tests.conftest import PAPER, ROOT, make_settings

PER_PAGE = 10  # results per page in the paging test
PER_PAGE_ARG = str(PER_PAGE)
HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime")
PROBE = """
import json, sys
sys.argv = ["membot", *sys.argv[1:]]
code = 0
try:
    from bot.cli import main
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
sys.stdout.write("\\nIMPORTED " + json.dumps(sorted(sys.modules)) + "\\n")
sys.exit(code)
"""


@dataclass
class Run:
    code: int
    out: str
    err: str
    heavy: list[str]  # the model runtimes imported (HEAVY)
    modules: list[str] = field(default_factory=list)  # every module imported


def probe(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Run:
    """`membot ARGS` in a fresh Python process, as a person would run it, plus the heavy modules it imported."""
    full_env = {**os.environ, "MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env or {})}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    out, _, tail = done.stdout.rpartition("\nIMPORTED ")
    assert tail, f"the probe did not finish: {done.stdout}\n{done.stderr}"
    modules = json.loads(tail)
    return Run(done.returncode, out, done.stderr, [m for m in modules if m.split(".")[0] in HEAVY], modules)


@pytest.fixture
def cli(home: Path, embedder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`membot ARGS` in this process through bot.cli.main (its error handling included), with the shared model."""
    monkeypatch.setattr("bot.container.make_embedder", lambda settings: embedder)

    def invoke(*args: str, at: Path = home) -> Run:
        monkeypatch.setenv("MEMBOT_HOME", str(at))
        monkeypatch.setattr(sys, "argv", ["membot", *args])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err, [])

    return invoke


def assert_clean_failure(run: Run, message: str) -> None:
    assert run.code == 1, (run.out, run.err)
    assert message in run.err, run.err
    assert "Traceback" not in run.err + run.out


# one real load of the paper, shared by the read-only tests below -----------------------------------------
@pytest.fixture(scope="module")
def paper_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    home = tmp_path_factory.mktemp("cli") / "home"
    files = tmp_path_factory.mktemp("inputs")
    (files / "corrupt.pdf").write_bytes(b"%PDF-1.4\nnot really a PDF")
    (files / "empty.txt").write_bytes(b"")
    # A terminal-compatible stderr, so the progress bar draws as it would for a person.
    run = probe(home, "load", "directory", "--name", "paper", "--input-files", str(PAPER),
                str(files / "corrupt.pdf"), str(files / "empty.txt"),
                env={"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "120"})
    return home, run


def paper_passages(home: Path) -> int:
    with Container(make_settings(home)) as c:  # no model: nothing here embeds
        return c.catalog.summary(c.catalog.get("local", "paper")).passages


def test_load_reports_counts_failures_and_draws_progress(paper_home: tuple[Path, Run]) -> None:
    home, run = paper_home
    assert run.code == 0, run.err
    passages = paper_passages(home)
    assert 55 <= passages <= 75
    assert run.out.strip() == f"Loaded {passages} passages and 13 documents from paper (2 file(s) failed)"
    assert "Failed: corrupt.pdf: corrupt or unreadable PDF" in run.err
    assert "Failed: empty.txt: the file is empty" in run.err
    assert "embedding memgpt_paper.pdf" in run.err and "files" in run.err  # the progress bar
    assert "Traceback" not in run.err
    assert "onnxruntime" in run.heavy, run.heavy  # loading embeds: the probe sees the model's imports
    assert "torch" not in run.heavy and "transformers" not in run.heavy  # the default model needs no torch


def test_sources_list_and_show_without_importing_torch(paper_home: tuple[Path, Run]) -> None:
    home, _ = paper_home
    passages = paper_passages(home)
    listed = probe(home, "sources", "list")
    assert listed.code == 0, listed.err
    header, rule, row = listed.out.strip().splitlines()
    assert header.split() == ["name", "files", "documents", "passages", "embedding", "model", "updated"]
    assert row.split()[:6] == ["paper", "1", "13", str(passages), "all-MiniLM-L6-v2-onnx-int8", "(384)"]
    assert listed.heavy == []

    shown = probe(home, "sources", "show", "paper")
    assert shown.code == 0, shown.err
    lines = shown.out.strip().splitlines()
    assert lines[0] == f"Source paper: 1 files, 13 documents, {passages} passages"
    assert lines[1].startswith("Embedding model: all-MiniLM-L6-v2-onnx-int8 (384 dimensions), chunks of up to 254 "
                               "tokens")
    sha = hashlib.sha256(PAPER.read_bytes()).hexdigest()[:12]
    assert lines[4].split()[:5] == ["memgpt_paper.pdf", "13", str(passages), str(PAPER.stat().st_size), sha]
    assert shown.heavy == []


def test_search_in_a_terminal_shows_scores_files_pages_and_totals(paper_home: tuple[Path, Run]) -> None:
    home, _ = paper_home
    run = probe(home, "search", "paper", "How does MemGPT manage its context window?", "-k", "3")
    assert run.code == 0, run.err
    lines = run.out.strip().splitlines()
    head = lines[0]
    assert head.startswith("Showing 1-3 of ") and "How does MemGPT manage its context window?" in head
    total = int(head.split(" of ")[1].split()[0])
    assert f"(page 1/{math.ceil(total / 3)})" in head
    results = [line for line in lines if line.startswith("[")]
    assert [r.split("]")[0] for r in results] == ["[1", "[2", "[3"]
    scores = []
    for r in results:
        _, score, rest = r.split(" ", 2)  # "[1] score 0.912  paper: memgpt_paper.pdf, page 4"
        scores.append(float(rest.split()[0]))
        assert score == "score"
        assert "paper: memgpt_paper.pdf, page " in rest
        assert 1 <= int(rest.rsplit("page ", 1)[1]) <= 13
    assert scores == sorted(scores, reverse=True)
    assert "onnxruntime" in run.heavy and "torch" not in run.heavy  # a search embeds its query, without torch
    # ... and loads nothing of turns, schedules or migrations (a database at the newest version is one SELECT)
    light = {"alembic", "openai", "apscheduler", "agent.loop", "agent.service", "agent.chat", "agent.llm"}
    assert light.isdisjoint(run.modules), sorted(light.intersection(run.modules))


@pytest.mark.parametrize("args", [
    ["--help"], ["load", "directory", "--help"], ["search", "--help"], ["sources", "--help"],
    ["sources", "list"], ["sources", "show", "nope"], ["configure", "-y", "--llm-model", "gpt-x"],
    ["configure", "--help"],
], ids=lambda a: " ".join(a))
def test_commands_that_do_not_embed_import_no_model_runtime(home: Path, args: list[str]) -> None:
    run = probe(home, *args)
    assert run.heavy == [], run.heavy
    assert run.code == (1 if args[:2] == ["sources", "show"] else 0), run.err
    assert "Traceback" not in run.err


def test_unknown_source_in_a_real_process(paper_home: tuple[Path, Run]) -> None:
    home, _ = paper_home
    run = probe(home, "sources", "show", "papr")
    assert_clean_failure(run, "Error: No source named 'papr'. Did you mean: paper?")


def test_configure_in_a_real_process_never_prints_the_key(home: Path) -> None:
    secret = "sk-live-0123456789abcdef"
    run = probe(home, "configure", "-y", "--openai-api-key", secret, "--llm-model", "gpt-x")
    assert run.code == 0, run.err
    assert secret not in run.out + run.err
    assert run.out.strip() == f"Saved settings to {home / 'config.toml'}"
    assert oct((home / "config.toml").stat().st_mode & 0o777) == oct(0o600)
    assert f'openai_api_key = "{secret}"' in (home / "config.toml").read_text()


def test_bad_settings_are_reported_without_a_traceback(home: Path) -> None:
    (home / "config.toml").write_text("context_window = \n")
    run = probe(home, "sources", "list")
    assert_clean_failure(run, f"Error: {home / 'config.toml'} is not valid TOML")
    (home / "config.toml").unlink()
    run = probe(home, "sources", "list", env={"MEMBOT_CONTEXT_WINDOW": "big"})
    assert_clean_failure(run, "Error: MEMBOT_CONTEXT_WINDOW must be a whole number, got 'big'.")


# search: JSON and paging (in-process, on the paper loaded above) ----------------------------------------
def test_search_json_pages_cover_every_result_once(paper_home: tuple[Path, Run], cli) -> None:
    home, _ = paper_home
    query = "memory hierarchy and paging"
    first = cli("search", "paper", query, "-k", PER_PAGE_ARG, "--json", at=home)
    assert first.code == 0, first.err
    data = json.loads(first.out)
    total, pages = data["total"], data["pages"]
    assert total > 2 * PER_PAGE and pages == math.ceil(total / PER_PAGE)
    searched = paper_passages(home)
    assert (data["page"], data["per_page"], data["query"], data["searched"]) == (1, PER_PAGE, query, searched)
    assert len(data["results"]) == PER_PAGE
    for r in data["results"]:
        assert r["file"] == "memgpt_paper.pdf" and 1 <= r["page"] <= 13 and r["source"] == "paper"
        assert isinstance(r["score"], float) and r["text"]

    seen: list[int] = []
    for page in range(1, pages + 1):
        run = cli("search", "paper", query, "-k", PER_PAGE_ARG, "--page", str(page), "--json", at=home)
        body = json.loads(run.out)
        assert (body["total"], body["pages"], body["page"]) == (total, pages, page)
        expected = PER_PAGE if page < pages else total - PER_PAGE * (pages - 1)
        assert len(body["results"]) == expected
        scores = [r["score"] for r in body["results"]]
        assert scores == sorted(scores, reverse=True)
        seen += [r["id"] for r in body["results"]]
    assert len(seen) == len(set(seen)) == total  # page 2 differs from page 1, and so on: no repeats, no gaps
    assert seen[:PER_PAGE] == [r["id"] for r in data["results"]]

    past = cli("search", "paper", query, "-k", PER_PAGE_ARG, "--page", str(pages + 1), "--json", at=home)
    assert json.loads(past.out)["results"] == [] and json.loads(past.out)["total"] == total
    text = cli("search", "paper", query, "-k", PER_PAGE_ARG, "--page", str(pages + 1), at=home)
    assert text.code == 0
    assert text.out.strip() == f"Page {pages + 1} is past the end: {total} results in {pages} pages."
    two = cli("search", "paper", query, "-k", PER_PAGE_ARG, "--page", "2", at=home)
    assert two.out.startswith(f"Showing {PER_PAGE + 1}-{2 * PER_PAGE} of {total} results (page 2/{pages})")
    assert f"[{PER_PAGE + 1}] score" in two.out and "[1] score" not in two.out


@pytest.mark.parametrize(("args", "message"), [
    (["-k", "0"], "Error: The page size (-k) and page number must be 1 or more."),
    (["--page", "0"], "Error: The page size (-k) and page number must be 1 or more."),
])
def test_search_rejects_bad_paging(paper_home: tuple[Path, Run], cli, args: list[str], message: str) -> None:
    home, _ = paper_home
    assert_clean_failure(cli("search", "paper", "memory", *args, at=home), message)


def test_search_with_nothing_relevant_says_so(paper_home: tuple[Path, Run], cli) -> None:
    home, _ = paper_home
    run = cli("search", "paper", "zzqxv", "--mode", "keyword", at=home)
    assert run.code == 0
    assert run.out.strip() == f"No results for 'zzqxv' (searched {paper_passages(home)} passages)."


# load: idempotence, replacement, directories, failures (in-process) -------------------------------------
def test_load_again_adds_nothing_and_a_changed_file_replaces(cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("The ferry leaves at 07:15 from pier OLDPIER-NINE.")
    first = cli("load", "directory", "--name", "notes", "--input-files", str(notes))
    assert (first.code, first.out.strip()) == (0, "Loaded 1 passages and 1 documents from notes")

    again = cli("load", "directory", "--name", "notes", "--input-files", str(notes))
    assert again.code == 0
    assert again.out.strip() == "Loaded 0 passages and 0 documents from notes (1 file(s) already loaded, nothing added)"
    assert "Skipped: notes.txt: already loaded; nothing added" in again.err

    notes.write_text("The ferry now leaves at 08:40 from pier NEWDOCK-TWELVE.")
    changed = cli("load", "directory", "--name", "notes", "--input-files", str(notes))
    assert changed.out.strip() == "Loaded 1 passages and 1 documents from notes (1 changed file(s) replaced)"
    found = json.loads(cli("search", "notes", "ferry leaves from the pier", "--json").out)
    assert found["total"] == 1 and "NEWDOCK-TWELVE" in found["results"][0]["text"]
    old = json.loads(cli("search", "notes", "OLDPIER-NINE", "--mode", "keyword", "--json").out)
    assert old["total"] == 0
    listed = cli("sources", "list")
    assert listed.out.splitlines()[2].split()[:4] == ["notes", "1", "1", "1"]


def test_load_a_directory_by_extension(cli, tmp_path: Path) -> None:
    from tests.test_loading import make_docx

    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("Text file: TXTCODE-RED.")
    (root / "b.md").write_text("# Markdown\nMDCODE-BLUE.")
    (root / "sub" / "c.txt").write_text("Nested file: NESTCODE-GREEN.")
    (root / "page.html").write_text("<html><body><p>HTMLCODE-GOLD</p><script>var x;</script></body></html>")
    make_docx(root / "notes.docx")
    (root / "skip.xyz").write_text("not taken")

    flat = cli("load", "directory", "--name", "docs", "--input-dir", str(root))
    assert flat.code == 0, flat.err
    assert flat.out.strip() == "Loaded 2 passages and 2 documents from docs"
    assert "Passed over 3 file(s) with other extensions (see --extensions)." in flat.err

    deep = cli("load", "directory", "--name", "docs", "--input-dir", str(root), "--recursive",
               "--extensions", ".txt,.md,.docx,html")
    assert deep.code == 0, deep.err
    assert deep.out.strip() == ("Loaded 3 passages and 3 documents from docs "
                                "(2 file(s) already loaded, nothing added)")
    assert "Passed over 1 file(s)" in deep.err
    shown = cli("sources", "show", "docs").out
    for name in ["a.txt", "b.md", "sub/c.txt", "page.html", "notes.docx"]:
        assert f"\n{name} " in shown
    hit = json.loads(cli("search", "docs", "HTMLCODE-GOLD", "-k", "1", "--json").out)["results"][0]
    assert hit["file"] == "page.html" and hit["page"] is None


def test_load_reports_unreadable_paths_by_name(cli, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("The pantry holds PANTRYCODE-OLIVE jars.")
    folder = tmp_path / "folder"
    folder.mkdir()
    dangling = tmp_path / "dangling.md"
    dangling.symlink_to(tmp_path / "missing-target.md")
    run = cli("load", "directory", "--name", "pantry", "--input-files", str(folder), str(dangling), str(good))
    assert run.code == 0, run.err
    assert "Failed: folder: cannot be read: it is a directory (load one with --input-dir)" in run.err
    assert f"Failed: dangling.md: cannot be read: a broken symbolic link to {tmp_path / 'missing-target.md'}" in run.err
    assert run.out.strip() == "Loaded 1 passages and 1 documents from pantry (2 file(s) failed)"


@pytest.mark.parametrize(("args", "message"), [
    (["--input-files", "nope.txt"], "Error: nope.txt: no such file."),
    (["--input-dir", "no-such-dir"], "Error: no-such-dir: no such directory."),
    ([], "Error: Give either --input-files or --input-dir (one of them)."),
    (["--input-dir", "."], "Error: No files to load (extensions: .txt,.md,.pdf)."),
])
def test_load_with_bad_arguments_fails_cleanly(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    assert_clean_failure(cli("load", "directory", "--name", "x", *args), message)


def test_load_where_every_file_fails_exits_1(cli, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF garbage")
    run = cli("load", "directory", "--name", "nothing", "--input-dir", str(tmp_path))
    assert run.code == 1
    assert run.out.strip() == "Loaded 0 passages and 0 documents from nothing (2 file(s) failed)"
    assert "Failed: bad.pdf: corrupt or unreadable PDF" in run.err and "Failed: empty.txt: the file is empty" in run.err
    assert cli("sources", "list").out.startswith("No sources yet.")


class OtherModel:
    model, dim, max_tokens = "other-model-v2", 8, 128

    def __init__(self, tokens) -> None:  # type: ignore[no-untyped-def]
        self.tokens = tokens

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        if progress:
            progress(len(texts))
        return normalise(np.ones((len(texts), self.dim), dtype=np.float32))


def test_load_with_another_embedding_model_is_refused(cli, tmp_path: Path, embedder,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("Loaded with the real model.")
    assert cli("load", "directory", "--name", "mixed", "--input-files", str(doc)).code == 0
    monkeypatch.setattr("bot.container.make_embedder", lambda settings: OtherModel(embedder.tokens))
    doc.write_text("A new version, embedded with another model.")
    run = cli("load", "directory", "--name", "mixed", "--input-files", str(doc))
    assert_clean_failure(run, "Error: Source 'mixed' holds passages embedded with all-MiniLM-L6-v2-onnx-int8 (384 "
                              "dimensions); "
                              "the configured model is other-model-v2 (8).")
    assert "set MEMBOT_EMBEDDING_MODEL=all-MiniLM-L6-v2-onnx-int8." in run.err
    search = cli("search", "mixed", "real model")
    assert_clean_failure(search, "Error: mixed was embedded with all-MiniLM-L6-v2-onnx-int8 (384 dimensions)")


# sources delete and unknown names -------------------------------------------------------------------------
def test_delete_removes_the_source_its_passages_and_bindings(cli, home: Path, tmp_path: Path) -> None:
    from agent.db.models import Agent, SourceBinding

    (tmp_path / "n.txt").write_text("Notes about the garden: GARDENCODE-ROSE.")
    (tmp_path / "m.txt").write_text("A notebook page about tides.")
    assert cli("load", "directory", "--name", "notes", "--input-files", str(tmp_path / "n.txt")).code == 0
    assert cli("load", "directory", "--name", "notebook", "--input-files", str(tmp_path / "m.txt")).code == 0
    with Container(make_settings(home)) as c:
        source = c.catalog.get("local", "notes")
        collection = c.passages.source_collection(int(source.id or 0))
        assert c.passages.exists(collection) and c.passages.count(collection) == 1
        with Session(c.engine) as s:
            agent = Agent(scope="local", name="helper")
            s.add(agent)
            s.commit()
            s.refresh(agent)
            s.add(SourceBinding(agent_id=int(agent.id or 0), source_id=int(source.id or 0)))
            s.commit()

    run = cli("sources", "delete", "notes", "-y")
    assert (run.code, run.out.strip()) == (0, "Deleted source notes and its 1 passages.")
    with Container(make_settings(home)) as c:
        assert not c.passages.exists(collection)
        assert c.catalog.find("local", "notes") is None
        with Session(c.engine) as s:
            assert s.exec(select(SourceBinding)).all() == []
    assert [line.split()[0] for line in cli("sources", "list").out.splitlines()[2:]] == ["notebook"]

    for args in (["search", "notes", "garden"], ["sources", "show", "notes"], ["sources", "delete", "notes", "-y"]):
        assert_clean_failure(cli(*args), "Error: No source named 'notes'. Did you mean: notebook?")
    assert cli("search", "notebook", "tides").code == 0

    assert cli("sources", "delete", "notebook", "-y").code == 0
    assert_clean_failure(cli("search", "notebook", "tides"),
                         "Error: No source named 'notebook': no sources are loaded yet (load one with `membot load`).")
    assert cli("sources", "list").out.startswith("No sources yet.")


def test_unknown_source_lists_the_sources_when_none_is_close(cli, tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("Recipes: bread and soup.")
    assert cli("load", "directory", "--name", "recipes", "--input-files", str(tmp_path / "r.txt")).code == 0
    assert_clean_failure(cli("search", "zzz", "soup"), "Error: No source named 'zzz'. Sources: recipes.")
    assert_clean_failure(cli("search", "recipes,zzz", "soup"), "Error: No source named 'zzz'.")


# configure in a real terminal ---------------------------------------------------------------------------------
IN_A_TERMINAL = """
import fcntl, runpy, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pseudo-terminal becomes this session's terminal, as in a shell
sys.argv = ["membot", *sys.argv[1:]]
runpy.run_module("bot", run_name="__main__")
"""


def test_configure_in_a_terminal_asks_each_question_and_hides_the_key(home: Path) -> None:
    import pty
    import select
    import time

    secret = "sk-typed-9f8e7d6c5b4a"
    master, slave = pty.openpty()
    env = {**os.environ, "MEMBOT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", IN_A_TERMINAL, "configure"], cwd=ROOT, env=env, stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    screen = b""

    def expect(text: str, timeout: float = 120) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while text.encode() not in screen:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {text!r} on the terminal; it shows:\n{screen.decode(errors='replace')}"
            try:
                screen += os.read(master, 4096)
            except OSError:  # the terminal closed: the process ended
                assert text.encode() in screen, screen.decode(errors="replace")
                return

    try:
        for prompt, answer in [
            ("Select storage backend for archival data", ""),
            (f"Enter the Milvus connection URI (Default: {home / 'milvus.db'})", ""),
            ("Database URL for agents, messages and sources", ""),
            ("Select embedding provider (local, openai) [local]", "openai"),
            ("Embedding model [text-embedding-3-small]", ""),
            ("OpenAI-compatible endpoint", "http://127.0.0.1:11434/v1"),
            ("OpenAI API key (blank to keep the current one)", secret),
            ("Chat model [gpt-4o-mini]", "llama3.1"),
            ("Context window (tokens) [8192]", "32768"),
        ]:
            expect(prompt)
            os.write(master, answer.encode() + b"\r")
        expect(f"Saved settings to {home / 'config.toml'}")
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert secret.encode() not in screen  # typed, but never shown
    assert oct((home / "config.toml").stat().st_mode & 0o777) == oct(0o600)
    s = make_settings(home)
    assert (s.embedding_provider, s.embedding_model, reveal(s.openai_api_key), s.openai_base_url, s.llm_model,
            s.context_window) == ("openai", "text-embedding-3-small", secret, "http://127.0.0.1:11434/v1", "llama3.1",
                                  32768)
