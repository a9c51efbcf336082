"""The load pipeline: the next file is parsed while this one embeds, slices are stored while the next embeds,
and a failure in any stage still leaves nothing half-loaded."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from agent.loading import pipeline
from agent.loading.pipeline import ReadAhead, embed_and_store
from bot.container import Container
from tests.test_loading import assert_consistent, prose, stored, txt


def test_the_next_file_is_prepared_while_this_one_is_handled() -> None:
    second_started = threading.Event()

    def prepare(item: str) -> str:
        if item == "b":
            second_started.set()
        return item.upper()

    seen = []
    with ReadAhead(["a", "b", "c"], prepare) as ahead:
        for item, prepared in ahead:
            if item == "a":  # b's preparation runs while a is still being handled, not after
                assert second_started.wait(30), "the next item was not read ahead"
            seen.append(prepared.result())
    assert seen == ["A", "B", "C"]
    assert list(ReadAhead([], prepare)) == []


def test_the_first_file_is_prepared_before_iterating() -> None:
    """The loader checks the source (opening Milvus) while the first file is parsed."""
    started = threading.Event()

    def prepare(item: str) -> str:
        started.set()
        return item

    with ReadAhead(["a"], prepare) as ahead:
        assert started.wait(30), "the first item waited for the iteration"
        assert [f.result() for _, f in ahead] == ["a"]


def test_a_failing_preparation_fails_only_its_own_item() -> None:
    def prepare(item: str) -> str:
        if item == "bad":
            raise ValueError("unreadable")
        return item

    outcomes = []
    with ReadAhead(["ok", "bad", "fine"], prepare) as ahead:
        for _, prepared in ahead:
            outcomes.append(repr(prepared.exception()) if prepared.exception() else prepared.result())
    assert outcomes == ["ok", "ValueError('unreadable')", "fine"]


def test_slices_are_stored_in_order_with_their_vectors(embedder) -> None:
    texts = [f"note {i} about the staging cluster" for i in range(10)]
    got: list[tuple[int, np.ndarray]] = []
    counted: list[int] = []
    embed_and_store(embedder, texts, lambda first, vectors: got.append((first, vectors)), counted.append, size=4)
    assert [first for first, _ in got] == [0, 4, 8] and sum(counted) == 10
    together = np.vstack([v for _, v in got])
    np.testing.assert_allclose(together, embedder.embed(texts), atol=1e-5)


def test_a_failing_store_stops_the_embedding_and_is_raised(embedder) -> None:
    embedded: list[int] = []

    def store(first: int, vectors: np.ndarray) -> None:
        raise ConnectionError("Milvus went away")

    with pytest.raises(ConnectionError, match="Milvus went away"):
        embed_and_store(embedder, [f"text {i}" for i in range(40)], store, embedded.append, size=4)
    assert sum(embedded) < 40  # it stopped instead of embedding everything for nothing


def test_a_store_failure_after_the_first_slice_takes_back_every_slice(container: Container, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    container.loader.load("local", "ops", [txt("first.txt", prose("first", 3, seed=1))])
    before = assert_consistent(container, "ops")
    monkeypatch.setattr(pipeline, "SLICE", 4)  # several slices from a small file
    real_insert, calls = container.passages.insert, []

    def insert_then_fail(collection, rows):  # type: ignore[no-untyped-def]
        calls.append(len(rows))
        if len(calls) == 2:
            raise ConnectionError("Milvus went away")
        return real_insert(collection, rows)

    monkeypatch.setattr(container.passages, "insert", insert_then_fail)
    report = container.loader.load("local", "ops", [txt("second.txt", prose("second", 200, seed=2)),
                                                    txt("third.txt", prose("third", 2, seed=3))])
    assert calls[:2] == [4, 4]  # second.txt's first slice was stored, its second failed
    assert [(o.name, o.status) for o in report.outcomes] == [("second.txt", "failed"), ("third.txt", "loaded")]
    assert "Milvus went away" in report.outcomes[0].reason
    after = assert_consistent(container, "ops")  # the first slice of second.txt is gone again
    assert sorted(set(after.file_names)) == ["first.txt", "third.txt"]
    assert set(before.ids.tolist()) <= set(after.ids.tolist())
    assert "second.txt" not in stored(container, "ops").file_names
