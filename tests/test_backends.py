"""One storage flow on both backends: SQLite + Milvus Lite (a path) and PostgreSQL + a Milvus server process.

Load the paper, load it again (nothing added), page through every result, restart on the same stores, replace a
changed file, delete a source, and see a source deleted and re-created by another process instead of a stale
cache of the old one.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlmodel import Session, select

from agent.archival.milvus_store import PassageStore
from agent.archival.search import SearchPage
from agent.db.models import Agent, Source, SourceBinding
from agent.errors import NotFound, StoreUnavailable
from agent.loading.inputs import InputFile
from bot.container import Container
from bot.settings import Settings
from tests.conftest import PAPER, ROOT, make_settings


@dataclass
class Backend:
    name: str
    settings: Settings
    scope: str

    def open(self, embedder) -> Container:  # type: ignore[no-untyped-def]
        return Container(self.settings, embedder=embedder)


@pytest.fixture(params=["sqlite+milvus-lite", "postgres+milvus-server"])
def backend(request, home) -> Iterator[Backend]:  # type: ignore[no-untyped-def]
    scope = f"test:{uuid.uuid4().hex[:8]}"  # the PostgreSQL database and Milvus server live for the session
    if request.param == "sqlite+milvus-lite":
        settings = make_settings(home)
        assert settings.milvus_is_local and settings.database_url.startswith("sqlite")
    else:
        pg_url = request.getfixturevalue("pg_url")
        milvus = request.getfixturevalue("milvus_server")
        settings = make_settings(home, MEMBOT_DATABASE_URL=pg_url, MEMBOT_MILVUS_URI=milvus)
        assert milvus.startswith("http://127.0.0.1:")
    yield Backend(request.param, settings, scope)


def every_page(c: Container, scope: str, names: list[str], query: str, k: int, mode: str) -> list[SearchPage]:
    first = c.sources.search(scope, names, query, k=k, page=1, mode=mode)
    pages = [first]
    for n in range(2, first.pages + 1):
        pages.append(c.sources.search(scope, names, query, k=k, page=n, mode=mode))
    return pages


def check_paging(c: Container, scope: str, names: list[str], query: str, k: int, mode: str) -> list[int]:
    """Every page agrees on total and pages; together they hold `total` distinct passages, best first."""
    pages = every_page(c, scope, names, query, k, mode)
    total = pages[0].total
    assert total > k, f"{mode}: too few results ({total}) to test paging"
    assert pages[0].pages == -(-total // k)
    for n, p in enumerate(pages, start=1):
        assert (p.page, p.total, p.pages, p.per_page, p.mode) == (n, total, pages[0].pages, k, mode)
        assert len(p.hits) == (k if n < len(pages) else total - k * (len(pages) - 1))
    ids = [h.passage_id for p in pages for h in p.hits]
    assert len(ids) == total, f"{mode}: pages hold {len(ids)} passages, total says {total}"
    assert len(set(ids)) == total, f"{mode}: a passage appears on two pages"
    scores = [h.score for p in pages for h in p.hits]
    assert all(a >= b for a, b in zip(scores, scores[1:])), f"{mode}: pages are not in one ranking"
    past = c.sources.search(scope, names, query, k=k, page=len(pages) + 1, mode=mode)
    assert past.hits == [] and past.total == total
    return ids


def release_check(path: str, collection: str) -> subprocess.CompletedProcess[str]:
    """Open a Milvus Lite path in another process and count a collection there."""
    code = ("import sys; from agent.archival.milvus_store import PassageStore; s = PassageStore(sys.argv[1]); "
            "print('ROWS', s.count(sys.argv[2])); s.close()")
    return subprocess.run([sys.executable, "-c", code, path, collection], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_paper_flow(backend: Backend, embedder) -> None:  # type: ignore[no-untyped-def]
    scope = backend.scope
    with backend.open(embedder) as c:
        report = c.loader.load(scope, "paper", [InputFile.from_path(PAPER)])
        assert [o.status for o in report.outcomes] == ["loaded"]
        assert report.documents == 13 and 55 <= report.passages <= 90
        passages = report.passages
        source = c.catalog.get(scope, "paper")
        collection = c.passages.source_collection(int(source.id or 0))
        assert c.passages.count(collection) == passages

        # Loading the same file again adds nothing and changes nothing.
        again = c.loader.load(scope, "paper", [InputFile.from_path(PAPER)])
        assert [o.status for o in again.outcomes] == ["unchanged"] and again.passages == 0
        assert c.passages.count(collection) == passages
        assert c.catalog.get(scope, "paper").revision == source.revision
        summary = c.catalog.summary(c.catalog.get(scope, "paper"))
        assert (summary.files, summary.documents, summary.passages) == (1, 13, passages)

        # Paging: true totals, every page from one ranking, in each mode.
        dense_ids = check_paging(c, scope, ["paper"], "How does the agent manage its limited context window?",
                                 7, "dense")
        assert len(dense_ids) == passages  # dense ranks every passage
        hybrid_ids = check_paging(c, scope, ["paper"], "How does the agent manage its limited context window?",
                                  6, "hybrid")
        check_paging(c, scope, ["paper"], "memory context", 4, "keyword")
        # Naming a source twice searches it once.
        twice = c.sources.search(scope, ["paper", "paper"], "context window", k=5, mode="dense")
        assert twice.total == passages
        before = c.sources.search(scope, ["paper"], "What is MemGPT?", k=5)
        assert "MemGPT" in before.hits[0].text

    # Restart: the stores hold everything; for Milvus Lite, closing released the path for other processes.
    if backend.settings.milvus_is_local:
        out = release_check(backend.settings.milvus_uri, collection)
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"ROWS {passages}" in out.stdout
    with backend.open(embedder) as c:
        after = c.sources.search(scope, ["paper"], "What is MemGPT?", k=5)
        assert [h.passage_id for h in after.hits] == [h.passage_id for h in before.hits]
        assert (after.total, after.pages) == (before.total, before.pages)
        assert check_paging(c, scope, ["paper"], "How does the agent manage its limited context window?", 6,
                            "hybrid") == hybrid_ids

        # Delete: the source's collection is dropped and every agent's binding to it is gone.
        with Session(c.engine) as s:
            agent = Agent(scope=scope, name="reader")
            s.add(agent)
            s.commit()
            s.refresh(agent)
            s.add(SourceBinding(agent_id=int(agent.id or 0), source_id=int(source.id or 0)))
            s.commit()
            agent_id = int(agent.id or 0)
        c.sources.delete(scope, "paper")
        assert not c.passages.exists(collection)
        with Session(c.engine) as s:
            assert s.exec(select(SourceBinding).where(SourceBinding.agent_id == agent_id)).all() == []
            assert s.get(Agent, agent_id) is not None  # the agent itself stays
        assert c.catalog.find(scope, "paper") is None
        assert c.catalog.documents(int(source.id or 0)) == []
        with pytest.raises(NotFound):
            c.sources.search(scope, ["paper"], "What is MemGPT?")
    with backend.open(embedder) as c:
        assert not c.passages.exists(collection)
        assert c.sources.summaries(scope) == []


def test_replace_changed_file(backend: Backend, embedder) -> None:  # type: ignore[no-untyped-def]
    scope = backend.scope
    old = b"Operations handbook.\n\nThe quarterly budget code is PLUM-7731. Ask finance before spending."
    new = b"Operations handbook.\n\nThe quarterly budget code is KIWI-4410. Ask finance before spending."
    with backend.open(embedder) as c:
        c.loader.load(scope, "ops", [InputFile.from_bytes("handbook.txt", old),
                                     InputFile.from_bytes("other.txt", b"The office opens at nine.")])
        assert c.sources.search(scope, ["ops"], "PLUM-7731", mode="keyword").total == 1
        sid = int(c.catalog.get(scope, "ops").id or 0)
        collection = c.passages.source_collection(sid)
        before = c.catalog.documents(sid)

        report = c.loader.load(scope, "ops", [InputFile.from_bytes("handbook.txt", new)])
        assert [o.status for o in report.outcomes] == ["replaced"]
        docs = c.catalog.documents(sid)
        assert sorted(d.file_name for d in docs) == ["handbook.txt", "other.txt"]
        handbook = next(d for d in docs if d.file_name == "handbook.txt")
        assert handbook.id not in {d.id for d in before}
        # The old version's passages are gone from the store, not only hidden.
        assert c.passages.document_ids(collection) == {int(d.id or 0) for d in docs}
        assert c.passages.count(collection) == sum(d.passage_count for d in docs)
        assert c.sources.search(scope, ["ops"], "PLUM-7731", mode="keyword").total == 0
        hits = c.sources.search(scope, ["ops"], "What is the quarterly budget code?").hits
        assert "KIWI-4410" in hits[0].text
        assert all("PLUM-7731" not in h.text for h in hits)
    with backend.open(embedder) as c:  # and it stays replaced after a restart
        assert c.sources.search(scope, ["ops"], "PLUM-7731", mode="keyword").total == 0
        assert "KIWI-4410" in c.sources.search(scope, ["ops"], "KIWI-4410").hits[0].text


def test_equal_scores_page_consistently(backend: Backend, embedder) -> None:  # type: ignore[no-untyped-def]
    """Copies of one text score exactly alike; pages must still split one ranking (no passage twice or never)."""
    scope = backend.scope
    variants = [
        "The backup job copies the billing database to cold storage every night.",
        "Every night the billing database is backed up to cold storage.",
        "Backups of the billing database run nightly.",
        "The billing database lives on the primary cluster.",
        "Cold storage keeps backups for ninety days.",
        "The nightly job also rotates the logs.",
    ]
    # Six copies of each (trailing spaces make the files differ; the passages are the very same text).
    files = [InputFile.from_bytes(f"v{v}-{n}.txt", (text + " " * n).encode())
             for v, text in enumerate(variants) for n in range(6)]
    files += [InputFile.from_bytes("unrelated.txt", b"The cafeteria serves soup on Fridays.")]
    with backend.open(embedder) as c:
        report = c.loader.load(scope, "dupes", files)
        assert report.passages == 37
        for mode in ("keyword", "hybrid", "dense"):
            ids = check_paging(c, scope, ["dupes"], "When is the billing database backed up?", 5, mode)
            assert len(ids) >= 24
        # The ties this test is about. BM25 ties exactly by construction; the model's vectors for equal texts
        # usually do too, but a CPU under load may round them apart, so only the keyword side is asserted.
        page = c.sources.search(scope, ["dupes"], "When is the billing database backed up?", k=40, mode="keyword")
        assert len({h.score for h in page.hits}) <= len(variants)


def test_source_recreated_by_another_process_is_not_served_stale(backend: Backend, embedder  # type: ignore[no-untyped-def]
                                                                 ) -> None:
    """A long-running process (the bot) keeps a search cache while another (the CLI) deletes a source and loads
    one of the same name. On SQLite the new rows can reuse the old ids; the bot must still see the new text."""
    scope = backend.scope
    bot = backend.open(embedder)
    cli = backend.open(embedder)
    try:
        cli.loader.load(scope, "notes", [InputFile.from_bytes("notes.txt", b"The meeting room is Saturn.")])
        assert "Saturn" in bot.sources.search(scope, ["notes"], "Which meeting room?").hits[0].text
        cli.sources.delete(scope, "notes")
        cli.loader.load(scope, "notes", [InputFile.from_bytes("notes.txt", b"The meeting room is Jupiter.")])
        hits = bot.sources.search(scope, ["notes"], "Which meeting room?").hits
        assert [h.text for h in hits] == ["The meeting room is Jupiter."]
    finally:
        bot.close()
        cli.close()


HOLDER = """
import sys
from agent.archival.milvus_store import PassageStore, PassageRow
store = PassageStore(sys.argv[1])
store.ensure("membot_src_1", 4)
store.insert("membot_src_1", [PassageRow(1, [1.0, 0.0, 0.0, 0.0], "held", 1, "f.txt", 0, 0, 0)])
print("READY", flush=True)
sys.stdin.readline()  # hold the path until the test closes our stdin
store.close()
"""


def test_milvus_lite_path_held_by_another_process(home, embedder) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(home)
    path = settings.milvus_uri
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "READY", holder.stderr
        with pytest.raises(StoreUnavailable) as err:
            PassageStore(path)
        message = str(err.value)
        assert path in message
        assert "one process per path" in message
        assert "MEMBOT_MILVUS_URI=http://" in message
        # The same through the container, as `membot search` would open it for a source it has no snapshot of.
        with Container(settings, embedder=embedder) as c:
            source = c.catalog.get_or_create("local", "paper", embedder.model, embedder.dim, 254)
            with Session(c.engine) as s:
                row = s.get(Source, source.id)
                assert row is not None
                row.ready = True
                s.add(row)
                s.commit()
            with pytest.raises(StoreUnavailable, match="one process"):
                c.sources.search("local", ["paper"], "anything")
    finally:
        if holder.stdin:
            holder.stdin.close()
        holder.wait(60)
    assert holder.returncode == 0, holder.stderr.read() if holder.stderr else ""
    # Once the other process is gone the path opens, with what it wrote.
    store = PassageStore(path)
    try:
        assert store.count("membot_src_1") == 1
    finally:
        store.close()
