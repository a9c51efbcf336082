"""Search inside the real Milvus 2.3.5 server: ANN recall against exact numpy over what an agent may see, honest
totals, deployments that share a server, the identifier fallback, deletes, and moving the old layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agent.archival.index import IndexCache
from agent.archival.search import Searcher, SearchTarget
from agent.archival.server_search import CANDIDATES, ServerSearch
from agent.embeddings.base import normalise
from agent.embeddings.models import DEFAULT_MODEL
from agent.errors import UserError
from agent.loading.inputs import InputFile
from bot.container import Container
from tests.conftest import make_settings, run_cli
from tests.test_search_quality import (
    SCOPE,
    SENTENCE_PARTS,
    FixedEmbedder,
    build_corpus,
    exact_top,
    put_document,
    synthetic_vectors,
)


@pytest.fixture(scope="module")
def base_vectors(embedder) -> np.ndarray:  # type: ignore[no-untyped-def]
    a, b, c = SENTENCE_PARTS
    return embedder.embed([f"{x} {y} {z}." for x in a for y in b[:3] for z in c][:300])


@pytest.fixture
def server(home: Path, milvus_standalone: str, embedder) -> Iterator[Container]:  # type: ignore[no-untyped-def]
    """A deployment of its own (its own SQLite database, so its own Milvus prefix) on the shared real server."""
    with Container(make_settings(home, MEMBOT_MILVUS_URI=milvus_standalone), embedder=embedder) as c:
        yield c


def server_searcher(c: Container, query: np.ndarray) -> tuple[Searcher, FixedEmbedder]:
    fixed = FixedEmbedder(DEFAULT_MODEL, 384, query)
    assert c.passages.shared is not None
    return Searcher(IndexCache(c.passages, 1000), lambda: fixed, ServerSearch(c.passages.shared)), fixed


def targets(c: Container, names: list[str]) -> list[SearchTarget]:
    return [c.sources.target(c.catalog.get(SCOPE, n)) for n in names]


def test_ann_recall_and_visibility_against_exact_numpy(server: Container, base_vectors: np.ndarray) -> None:
    corpus = build_corpus(server, base_vectors, sources=10, per_source=400)
    visible = ["src02", "src05", "src08"]
    seen = set(np.concatenate([corpus.ids[n] for n in visible]).tolist())
    rng = np.random.default_rng(11)
    queries = np.concatenate([synthetic_vectors(rng, base_vectors, 30, spread=0.5), base_vectors[:10]])
    searcher, fixed = server_searcher(server, queries[0])
    recall = []
    by_id = dict(zip(np.concatenate([corpus.ids[n] for n in visible]).tolist(),
                     np.concatenate([corpus.vectors[n] for n in visible])))
    for q in queries:
        fixed.vector = q
        page = searcher.search(targets(server, visible), "any question", k=10, mode="dense")
        got = [h.passage_id for h in page.hits]
        recall.append(len(set(got) & set(exact_top(corpus, visible, q, 10))) / 10)
        assert set(got) <= seen and {h.label for h in page.hits} <= set(visible)
        assert all(abs(h.similarity - float(by_id[h.passage_id] @ q)) < 1e-3 for h in page.hits)
        # 1,200 rows may be seen and the server was asked for CANDIDATES: a lower bound, said as one.
        assert page.at_least and page.total >= CANDIDATES and page.total_text.startswith("at least ")
    assert np.mean(recall) >= 0.95, f"recall@10 = {np.mean(recall):.3f}"
    assert fixed.calls == len(queries)

    # Every page of one query is cut from the same ranking, and a deep page asks the server for enough rows.
    first, second = (searcher.search(targets(server, visible), "q", k=60, page=p, mode="dense") for p in (1, 2))
    ids = [h.passage_id for h in first.hits + second.hits]
    assert len(ids) == len(set(ids)) == 120


def test_loading_and_deleted_documents_stay_hidden(server: Container, base_vectors: np.ndarray) -> None:
    build_corpus(server, base_vectors, sources=3, per_source=100, seed=5)
    names = ["src00", "src01", "src02"]
    probe = normalise(np.random.default_rng(3).standard_normal((1, 384)).astype(np.float32))[0]
    sid = int(server.catalog.get(SCOPE, "src01").id or 0)
    doc_id, loading = put_document(server.catalog, server.passages, sid, "late.txt",
                                   ["late passage ERR_LATE_42"], probe[None, :], commit=False)
    searcher, _ = server_searcher(server, probe)
    for mode, query in (("dense", "q"), ("hybrid", "late passage ERR_LATE_42"), ("keyword", "ERR_LATE_42")):
        page = searcher.search(targets(server, names), query, k=500, mode=mode)
        assert loading[0] not in {h.passage_id for h in page.hits}, mode
    # Committed: this process wrote it, and Session consistency shows it at once.
    server.catalog.commit_document(doc_id, sid)
    assert searcher.search(targets(server, names), "q", k=1, mode="dense").hits[0].passage_id == loading[0]
    page = searcher.search(targets(server, names), "err_late_42", k=5, mode="keyword")
    assert [h.passage_id for h in page.hits] == loading and page.total == 1 and not page.at_least
    # A source deleted: its rows leave the shared collection, the others stay.
    server.sources.delete(SCOPE, "src01")
    assert server.passages.count(server.passages.source_collection(sid)) == 0
    rest = searcher.search(targets(server, ["src00", "src02"]), "q", k=500, mode="dense")
    assert {h.label for h in rest.hits} == {"src00", "src02"}


def test_many_sources_in_one_search(server: Container, base_vectors: np.ndarray) -> None:
    # Milvus 2.3 fails on a filter of a few dozen OR-ed clauses: sixty sources still search as one.
    corpus = build_corpus(server, base_vectors, sources=60, per_source=4, seed=8)
    searcher, fixed = server_searcher(server, corpus.vectors["src33"][0])
    page = searcher.search(targets(server, corpus.names), "q", k=300, mode="dense")
    assert page.hits[0].passage_id == int(corpus.ids["src33"][0]) and page.hits[0].label == "src33"
    assert {h.passage_id for h in page.hits} == set(np.concatenate(list(corpus.ids.values())).tolist())


def test_identifier_fallback_on_a_server_without_bm25(server: Container) -> None:
    assert server.passages.shared is not None and not server.passages.shared.features.bm25  # Milvus 2.3.5
    assert "identifier filter" in server.searcher.mode and "2.3.5" in server.searcher.mode
    server.loader.load(SCOPE, "notes", [InputFile.from_bytes("n.txt", b"The launch code is ZX-81-ALPHA.")])
    page = server.sources.search(SCOPE, ["notes"], "zx-81-alpha", mode="keyword")
    assert page.total == 1 and page.hits[0].keyword == 1.0
    with pytest.raises(UserError, match="identifiers only"):
        server.sources.search(SCOPE, ["notes"], "launch code", mode="keyword")


def test_bm25_on_a_server_with_full_text_search(home: Path, milvus_server: str, embedder) -> None:  # type: ignore[no-untyped-def]
    # Milvus Lite 2.5+ run as a server has BM25 function fields: the 2.5+ path, on a real implementation.
    with Container(make_settings(home, MEMBOT_MILVUS_URI=milvus_server), embedder=embedder) as c:
        assert c.passages.shared is not None and c.passages.shared.features.bm25
        assert "BM25 full-text search" in c.searcher.mode
        rows = [f"Ticket {n}: the {w} on floor {n % 7} needs attention." for n, w in
                enumerate(["printer", "badge reader", "coffee machine", "router", "projector"] * 8)]
        rows[17] = "Ticket 1b4e28ba-2fa1-11d2-883f-0016d3cca427: the aquarium pump hums at night."
        c.loader.load(SCOPE, "tickets", [InputFile.from_bytes("t.txt", "\n\n".join(rows).encode())])
        words = c.sources.search(SCOPE, ["tickets"], "aquarium pump", k=3, mode="keyword")
        assert words.hits and "aquarium pump" in words.hits[0].text
        exact = c.sources.search(SCOPE, ["tickets"], "status of 1B4E28BA-2fa1-11d2-883f-0016d3cca427?", k=3)
        assert "aquarium" in exact.hits[0].text


def test_deployments_sharing_a_server_keep_apart(tmp_path: Path, milvus_standalone: str, embedder) -> None:  # type: ignore[no-untyped-def]
    texts = {"one": "Team one keeps the spare keys in drawer QX-1.", "two": "Team two parks bikes in room QX-1."}
    boxes = {name: Container(make_settings(tmp_path / name, MEMBOT_MILVUS_URI=milvus_standalone),
                             embedder=embedder) for name in texts}
    try:
        for name, box in boxes.items():
            box.loader.load(SCOPE, "notes", [InputFile.from_bytes("n.txt", texts[name].encode())])
        assert boxes["one"].settings.milvus_names != boxes["two"].settings.milvus_names
        for name, box in boxes.items():
            # Both sources have SQL id 1, and both mention QX-1: each deployment finds only its own.
            assert int(box.catalog.get(SCOPE, "notes").id or 0) == 1
            hits = box.sources.search(SCOPE, ["notes"], "QX-1", k=10).hits
            assert [h.text for h in hits] == [texts[name]]
            physical = box.passages.shared.all_physical()  # type: ignore[union-attr]
            assert physical and all(p.startswith(box.settings.milvus_names + "_") for p in physical)
    finally:
        for box in boxes.values():
            box.close()
    named = make_settings(tmp_path / "named", MEMBOT_MILVUS_URI=milvus_standalone, MEMBOT_MILVUS_PREFIX="team_a")
    assert named.milvus_names == "team_a"


def test_sources_show_and_migrate_from_the_old_layout(home: Path, milvus_standalone: str) -> None:
    env = {"MEMBOT_MILVUS_URI": milvus_standalone}
    loaded = run_cli(home, "load", "directory", "--name", "notes", "--input-files", str(_note(home)), env=env)
    assert loaded.returncode == 0, loaded.stderr
    shown = run_cli(home, "sources", "show", "notes", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "Search: Milvus server v2.3.5" in shown.stdout and "HNSW" in shown.stdout, shown.stdout

    # An old-layout collection, as earlier versions wrote on a server, for source 1.
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=milvus_standalone)
    legacy = "membot_src_1"
    if client.has_collection(legacy):
        client.drop_collection(legacy)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=384)
    schema.add_field("text", DataType.VARCHAR, max_length=65_535)
    for name in ("source_id", "agent_id", "document_id", "page", "chunk_index", "inserted_at"):
        schema.add_field(name, DataType.INT64)
    schema.add_field("file_name", DataType.VARCHAR, max_length=1024)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(legacy, schema=schema, index_params=index)
    vector = normalise(np.ones((1, 384), np.float32))[0].tolist()
    client.insert(legacy, [{"id": 7_000_000 + i, "vector": vector, "text": f"old passage OLD-{i}", "source_id": 1,
                            "agent_id": 0, "document_id": 1, "page": 0, "chunk_index": i, "inserted_at": 0,
                            "file_name": "note.txt"} for i in range(30)])
    hinted = run_cli(home, "sources", "show", "notes", env=env)
    assert "1 collection(s) of the old one-per-source layout" in hinted.stdout, hinted.stdout
    moved = run_cli(home, "sources", "migrate", env=env)
    assert moved.returncode == 0, moved.stderr
    assert "membot_src_1 -> " in moved.stdout and "30 passages" in moved.stdout, moved.stdout
    assert not client.has_collection(legacy)
    found = run_cli(home, "search", "notes", "OLD-17", "--mode", "keyword", env=env)
    assert "old passage OLD-17" in found.stdout, found.stdout
    again = run_cli(home, "sources", "migrate", env=env)
    assert "No collections of the old layout" in again.stdout, again.stdout


def test_lite_says_it_searches_in_process(container: Container) -> None:
    assert container.passages.shared is None
    assert container.searcher.mode.startswith("Milvus Lite: exact")


def test_milvus_prefix_is_checked(home: Path) -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError, match="MEMBOT_MILVUS_PREFIX must be a letter"):
        make_settings(home, MEMBOT_MILVUS_PREFIX="team-a")
    server = make_settings(home, MEMBOT_MILVUS_URI="http://127.0.0.1:1")
    assert server.milvus_names.startswith("membot_") and "sqlite" not in server.milvus_names
    assert make_settings(home).milvus_names == "membot"  # Milvus Lite keeps its names


def _note(home: Path) -> Path:
    path = home / "note.txt"
    path.write_text("The printer on floor two needs toner code TN-2420 every month.\n")
    return path
