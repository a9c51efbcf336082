"""The walkthrough's core in-process: load the paper, search it, on SQLite + Milvus Lite and on PostgreSQL + a
Milvus server process."""

from __future__ import annotations

from agent.loading.inputs import InputFile
from bot.container import Container
from tests.conftest import PAPER, make_settings


def test_load_and_search_paper(container: Container) -> None:
    report = container.loader.load("local", "paper", [InputFile.from_path(PAPER)])
    assert report.documents == 13
    assert 55 <= report.passages <= 90
    page = container.sources.search("local", ["paper"], "What is MemGPT?", k=5)
    assert page.total >= 5 and page.pages == -(-page.total // 5)
    assert all(h.file_name == "memgpt_paper.pdf" and 1 <= h.page <= 13 for h in page.hits)
    assert "MemGPT" in page.hits[0].text


def test_postgres_and_milvus_server(home, embedder, pg_url, milvus_server) -> None:
    settings = make_settings(home, MEMBOT_DATABASE_URL=pg_url, MEMBOT_MILVUS_URI=milvus_server)
    with Container(settings, embedder=embedder) as c:
        report = c.loader.load("local", "notes", [InputFile.from_bytes("a.txt", b"The launch code is ZX-81-ALPHA.")])
        assert report.passages == 1
        hits = c.sources.search("local", ["notes"], "ZX-81-ALPHA").hits
        assert hits and "ZX-81-ALPHA" in hits[0].text
