"""Search quality on the real stores: hybrid retrieval of exact identifiers among natural-language passages,
exact agreement with brute-force numpy over exactly the passages an agent may see, and refusing to compare
vectors of two embedding models."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from agent.archival.catalog import Catalog
from agent.archival.index import IndexCache
from agent.archival.milvus_store import PassageRow, PassageStore, now_ms, passage_id
from agent.archival.search import Searcher, SearchTarget
from agent.embeddings.base import normalise
from agent.embeddings.models import DEFAULT_MODEL
from agent.errors import EmbeddingMismatch
from agent.loading.inputs import InputFile
from bot.container import Container
from tests.conftest import PAPER, make_settings

SCOPE = "local"


# helpers -------------------------------------------------------------------------------------------------
class FixedEmbedder:
    """Our own seam: an embedder that answers the next query with a vector the test chose."""

    def __init__(self, model: str, dim: int, vector: np.ndarray | None = None) -> None:
        self.model = model
        self.dim = dim
        self.max_tokens = 256
        self.vector = vector if vector is not None else normalise(np.ones((1, dim), np.float32))[0]
        self.calls = 0

    @property
    def tokens(self):  # type: ignore[no-untyped-def]
        raise AssertionError("a search never counts tokens")

    def embed(self, texts: Sequence[str], progress=None) -> np.ndarray:  # type: ignore[no-untyped-def]
        self.calls += 1
        return np.asarray([self.vector] * len(texts), dtype=np.float32)


def put_document(catalog: Catalog, store: PassageStore, source_id: int, file_name: str, texts: Sequence[str],
                 vectors: np.ndarray, commit: bool = True) -> tuple[int, list[int]]:
    """Write one document's passages the way the loader does; without `commit` it stays `loading`."""
    digest = hashlib.sha256(("\n".join(texts) + file_name).encode()).hexdigest()
    doc = catalog.begin_document(source_id, file_name, digest, sum(len(t) for t in texts), 1, len(texts))
    doc_id = int(doc.id or 0)
    collection = store.source_collection(source_id)
    source = catalog.by_id(source_id)
    assert source is not None
    store.ensure(collection, vectors.shape[1], source.embedding_model)  # the server keys collections by model
    stamp = now_ms()
    rows = [PassageRow(passage_id(doc_id, i), v, t, doc_id, file_name, 0, i, stamp, source_id=source_id)
            for i, (t, v) in enumerate(zip(texts, vectors))]
    store.insert(collection, rows)
    if commit:
        catalog.commit_document(doc_id, source_id)
    return doc_id, [r.id for r in rows]


def new_source(c: Container, name: str, model: str = DEFAULT_MODEL, dim: int = 384) -> int:
    return int(c.catalog.get_or_create(SCOPE, name, model, dim, 254).id or 0)


# 3. hybrid retrieval ---------------------------------------------------------------------------------------
SUBJECTS = ["The VPN gateway", "The build agent", "The mail relay", "A laptop on floor three", "The payroll export",
            "The staging cluster", "The office printer", "The wiki search", "The badge reader", "The backup agent"]
PROBLEMS = ["drops connections after the firmware update", "runs out of memory during nightly jobs",
            "reports a full disk although half of it is free", "loses its context after a restart",
            "times out when more than fifty people log in", "prints blank pages in duplex mode",
            "shows yesterday's data until the cache is cleared", "rejects valid certificates since Monday",
            "crashes when the token limit is exceeded", "is slow to answer between noon and one"]
NOTES = ["Assigned to the infrastructure team.", "Customer asked for an update twice.",
         "Workaround: restart the service.", "Waiting for the vendor.", "Reopened after the last fix.",
         "Priority raised by the on-call engineer.", ""]


def ticket_text(rnd: random.Random, ticket: str) -> str:
    return f"Ticket {ticket}: {rnd.choice(SUBJECTS)} {rnd.choice(PROBLEMS)}. {rnd.choice(NOTES)}".strip()


@pytest.fixture(scope="module", params=["lite", "server"])
def shared(request, tmp_path_factory, embedder) -> Iterator[Container]:  # type: ignore[no-untyped-def]
    """One container for the module's read-only hybrid tests, so the 1,001 passages are embedded once: on Milvus
    Lite (exact search in process) and on the real Milvus 2.3.5 server (search inside Milvus)."""
    overrides = {}
    if request.param == "server":
        overrides["MEMBOT_MILVUS_URI"] = request.getfixturevalue("milvus_standalone")
    with Container(make_settings(tmp_path_factory.mktemp("quality-home"), **overrides), embedder=embedder) as c:
        assert (c.passages.shared is not None) == (request.param == "server")
        yield c


@pytest.fixture(scope="module")
def tickets_and_paper(shared: Container, embedder):  # type: ignore[no-untyped-def]
    container = shared
    rnd = random.Random(7)
    ids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(1001)]
    texts = [ticket_text(rnd, t) for t in ids]
    target = ids[500]
    texts[500] = f"Ticket {target}: the coffee machine on the roof terrace leaks water onto the carpet."
    sid = new_source(container, "tickets")
    put_document(container.catalog, container.passages, sid, "tickets.csv", texts, embedder.embed(texts))
    report = container.loader.load(SCOPE, "paper", [InputFile.from_path(PAPER)])
    assert report.passages > 50
    return ids, texts, target


def test_exact_identifier_is_rank_one_among_a_thousand(shared: Container, tickets_and_paper) -> None:  # type: ignore[no-untyped-def]
    container = shared
    ids, texts, target = tickets_and_paper
    both = ["tickets", "paper"]
    page = container.sources.search(SCOPE, both, f"Which ticket has id {target}?", k=5)
    assert page.hits[0].text == texts[500], [h.text for h in page.hits]
    # And for other tickets, written the ways people write them.
    for n, query in [(3, f"Which ticket has id {ids[3]}?"), (250, f"status of {ids[250]}"),
                     (999, f"ticket {ids[999]} please"), (42, ids[42].upper()),
                     (777, f"Show me (id={ids[777]}) again")]:
        hits = container.sources.search(SCOPE, both, query, k=3).hits
        assert hits[0].text == texts[n], (query, [h.text for h in hits])
    # The identifier alone in keyword mode, too.
    assert container.sources.search(SCOPE, ["tickets"], target, k=1, mode="keyword").hits[0].text == texts[500]


PARAPHRASES = [
    # (question in other words than the paper's, words one of the top passages must contain)
    ("How does the system cope with the fixed size of what the language model can read at once?",
     ["context window", "context length", "limited context", "virtual context"]),
    ("What idea from computer operating systems inspired the design?",
     ["operating system", "virtual memory", "paging"]),
    ("Which tasks did the authors use to evaluate it?",
     ["evaluat", "document analysis", "multi-session chat", "conversational agent"]),
    ("How does the agent keep facts about the person it talks to across long conversations?",
     ["memory", "persona", "conversation"]),
]


@pytest.mark.parametrize("question,expected", PARAPHRASES, ids=[p[0][:30] for p in PARAPHRASES])
def test_paraphrased_questions_still_find_the_paper(shared: Container, tickets_and_paper, question: str,  # type: ignore[no-untyped-def]
                                                    expected: list[str]) -> None:
    page = shared.sources.search(SCOPE, ["tickets", "paper"], question, k=5)
    top = page.hits[:3]
    assert all(h.label == "paper" for h in top), [(h.label, h.text[:80]) for h in top]
    assert any(word.lower() in h.text.lower() for h in top for word in expected), [h.text[:200] for h in top]


# 4. exact agreement with numpy over what an agent may see --------------------------------------------------
@dataclass
class Corpus:
    names: list[str]
    ids: dict[str, np.ndarray]  # ready passage ids per source
    vectors: dict[str, np.ndarray]  # their unit vectors, row for row
    bases: np.ndarray  # the real embeddings they were made from


def synthetic_vectors(rng: np.random.Generator, bases: np.ndarray, n: int, spread: float) -> np.ndarray:
    """Unit vectors near real embeddings: a real one plus Gaussian noise (cosine to it about 1/sqrt(1+s^2))."""
    pick = rng.integers(0, len(bases), n)
    noise = rng.standard_normal((n, bases.shape[1])).astype(np.float32) / np.sqrt(bases.shape[1])
    return normalise(bases[pick] + spread * noise)


SENTENCE_PARTS = (["The contract", "Our roadmap", "The incident review", "A customer email", "The lab notebook",
                   "The hiring plan", "The release note", "A design document", "The budget sheet", "The press kit"],
                  ["describes", "questions", "summarises", "postpones", "approves", "rejects", "mentions"],
                  ["the new storage layer", "quarterly revenue", "the outage on Tuesday", "a vaccine trial",
                   "the migration to PostgreSQL", "remote work rules", "a supplier in Lyon", "memory leaks",
                   "the search latency goal", "the annual party", "solar panel output", "the legal hold"])


@pytest.fixture(scope="module")
def base_vectors(embedder) -> np.ndarray:  # type: ignore[no-untyped-def]
    a, b, c = SENTENCE_PARTS
    sentences = [f"{x} {y} {z}." for x in a for y in b[:3] for z in c][:300]
    return embedder.embed(sentences)


def build_corpus(c: Container, bases: np.ndarray, sources: int, per_source: int, seed: int = 1) -> Corpus:
    rng = np.random.default_rng(seed)
    names = [f"src{n:02}" for n in range(sources)]
    out = Corpus(names, {}, {}, bases)
    for name in names:
        sid = new_source(c, name)
        vectors = synthetic_vectors(rng, bases, per_source, spread=0.8)
        half = per_source // 2  # two files per source
        all_ids: list[int] = []
        for part, rows in (("a.txt", slice(0, half)), ("b.txt", slice(half, per_source))):
            texts = [f"{name} {part} passage {i}: synthetic text." for i in range(len(vectors[rows]))]
            all_ids += put_document(c.catalog, c.passages, sid, part, texts, vectors[rows])[1]
        out.ids[name] = np.asarray(all_ids, dtype=np.int64)
        out.vectors[name] = vectors
    return out


def exact_top(corpus: Corpus, names: Sequence[str], q: np.ndarray, k: int) -> list[int]:
    ids = np.concatenate([corpus.ids[n] for n in names])
    sims = np.concatenate([corpus.vectors[n] for n in names]) @ q
    return [int(i) for i in ids[np.argsort(-sims, kind="stable")[:k]]]


def searcher_for(c: Container, query: np.ndarray) -> tuple[Searcher, FixedEmbedder]:
    fixed = FixedEmbedder(DEFAULT_MODEL, 384, query)
    return Searcher(IndexCache(c.passages, 1_000_000), lambda: fixed), fixed


def targets(c: Container, names: Sequence[str]) -> list[SearchTarget]:
    return [c.sources.target(c.catalog.get(SCOPE, n)) for n in names]


def test_dense_top10_equals_numpy_over_visible_sources(container: Container, base_vectors: np.ndarray) -> None:
    corpus = build_corpus(container, base_vectors, sources=40, per_source=500)
    visible = ["src03", "src17", "src31"]
    seen_ids = set(np.concatenate([corpus.ids[n] for n in visible]).tolist())
    rng = np.random.default_rng(99)
    queries = np.concatenate([synthetic_vectors(rng, base_vectors, 40, spread=0.5), base_vectors[:10]])
    searcher, fixed = searcher_for(container, queries[0])
    recall = []
    same_order = 0
    for q in queries:
        fixed.vector = q
        page = searcher.search(targets(container, visible), "any question", k=10, mode="dense")
        got = [h.passage_id for h in page.hits]
        want = exact_top(corpus, visible, q, 10)
        recall.append(len(set(got) & set(want)) / 10)
        same_order += got == want
        assert set(got) <= seen_ids
        assert {h.label for h in page.hits} <= set(visible)
        assert page.total == page.searched == len(seen_ids) == 1500
        # The scores are the true cosine similarities.
        by_id = dict(zip(np.concatenate([corpus.ids[n] for n in visible]).tolist(),
                         np.concatenate([corpus.vectors[n] for n in visible]) @ q))
        assert all(abs(h.similarity - by_id[h.passage_id]) < 1e-4 for h in page.hits)
    assert np.mean(recall) >= 0.95, f"recall@10 = {np.mean(recall):.3f}"
    assert same_order >= 0.95 * len(queries)
    assert fixed.calls == len(queries)

    # Everything the agent may see, and nothing else, in one page of all results: dense and hybrid.
    for mode in ("dense", "hybrid"):
        everything = searcher.search(targets(container, visible), "passage synthetic text", k=5000, mode=mode)
        assert {h.passage_id for h in everything.hits} <= seen_ids
        if mode == "dense":
            assert {h.passage_id for h in everything.hits} == seen_ids


def test_loading_document_and_source_filter(container: Container, base_vectors: np.ndarray) -> None:
    corpus = build_corpus(container, base_vectors, sources=4, per_source=200, seed=5)
    names = corpus.names
    # A document still loading in a searched source: its passages are in Milvus but must not be found, even
    # though one of them is exactly the query.
    probe = normalise(np.random.default_rng(3).standard_normal((1, 384)).astype(np.float32))[0]
    sid = int(container.catalog.get(SCOPE, "src01").id or 0)
    vectors = np.stack([probe] + [synthetic_vectors(np.random.default_rng(4), base_vectors, 1, 0.8)[0]] * 3)
    texts = ["the loading passage 0", "the loading passage 1", "the loading passage 2", "the loading passage 3"]
    doc_id, loading_ids = put_document(container.catalog, container.passages, sid, "late.txt", texts, vectors,
                                       commit=False)
    assert container.passages.count(container.passages.source_collection(sid)) == 204  # written, not visible
    searcher, _ = searcher_for(container, probe)
    for mode in ("dense", "hybrid", "keyword"):
        page = searcher.search(targets(container, names), "the loading passage", k=1000, mode=mode)
        assert not {h.passage_id for h in page.hits} & set(loading_ids), mode
        assert page.searched == 800
    assert searcher.search(targets(container, names), "q", k=1, mode="dense").hits[0].similarity < 0.99

    # Once the load commits, the same searcher (and its cache) finds it first.
    container.catalog.commit_document(doc_id, sid)
    page = searcher.search(targets(container, names), "q", k=1, mode="dense")
    assert page.hits[0].passage_id == loading_ids[0] and page.searched == 804

    # A source filter: searching one of the sources returns only that source, all of it.
    for name in names:
        only = searcher.search(targets(container, [name]), "passage", k=1000, mode="dense")
        expected = set(corpus.ids[name].tolist()) | (set(loading_ids) if name == "src01" else set())
        assert {h.passage_id for h in only.hits} == expected and {h.label for h in only.hits} == {name}
        only = container.sources.search(SCOPE, [name], "synthetic passage", k=1000, mode="keyword")
        assert {h.label for h in only.hits} == {name} and only.total == len(expected)


# 5. embedding mismatch ------------------------------------------------------------------------------------
def test_embedding_mismatch_is_refused(container: Container, embedder) -> None:  # type: ignore[no-untyped-def]
    container.loader.load(SCOPE, "notes", [InputFile.from_bytes("n.txt", b"The launch code is ZX-81-ALPHA.")])
    targets_ = targets(container, ["notes"])

    def search_with(e: FixedEmbedder, mode: str = "hybrid"):  # type: ignore[no-untyped-def]
        return Searcher(IndexCache(container.passages, 1000), lambda: e).search(targets_, "launch code", mode=mode)

    other_model = FixedEmbedder("text-embedding-3-small", 1536)
    with pytest.raises(EmbeddingMismatch) as err:
        search_with(other_model)
    message = str(err.value)
    for part in ("notes", DEFAULT_MODEL, "384", "text-embedding-3-small", "1536",
                 f"MEMBOT_EMBEDDING_MODEL={DEFAULT_MODEL}"):
        assert part in message, message
    assert other_model.calls == 0  # refused before embedding anything

    same_dim = FixedEmbedder("paraphrase-MiniLM-L3-v2", 384)  # same size, another model: still garbage
    with pytest.raises(EmbeddingMismatch, match="paraphrase-MiniLM-L3-v2"):
        search_with(same_dim, "dense")
    with pytest.raises(EmbeddingMismatch):
        search_with(FixedEmbedder(DEFAULT_MODEL, 768))  # the right name with another size

    # An embedder that says the right model but returns vectors of another size is caught too.
    lying = FixedEmbedder(DEFAULT_MODEL, 384, normalise(np.ones((1, 768), np.float32))[0])
    with pytest.raises(EmbeddingMismatch, match="768"):
        search_with(lying, "dense")

    # Keyword search compares no vectors, so it still works under another model.
    assert "ZX-81-ALPHA" in search_with(other_model, "keyword").hits[0].text

    # Through the container, as a person with MEMBOT_EMBEDDING_MODEL changed would hit it; with two sources the
    # message names the one that does not match.
    other = new_source(container, "remote", model="text-embedding-3-small", dim=1536)
    put_document(container.catalog, container.passages, other, "r.txt", ["remote passage"],
                 normalise(np.ones((1, 1536), np.float32)))
    with pytest.raises(EmbeddingMismatch, match="remote"):
        container.sources.search(SCOPE, ["notes", "remote"], "launch code")
    assert container.sources.search(SCOPE, ["notes"], "launch code").hits[0].label == "notes"
    with pytest.raises(EmbeddingMismatch):
        container.loader.load(SCOPE, "remote", [InputFile.from_bytes("x.txt", b"More text for the remote source.")])
