"""Local embeddings on onnxruntime, without torch: a BERT-style ONNX graph, pooled as sentence-transformers does.

The graph returns token states; the sentence vector is their mean over the real (unpadded) tokens, scaled to
length 1, which is what sentence-transformers' Pooling(mean) + Normalize modules compute for all-MiniLM-L6-v2.
onnxruntime is imported only when the first text is embedded, so commands that do not embed never load it.

Two settings come from measurements on a 2-core machine (bench/bench_embeddings.py, docs/embeddings.md):
- No graph optimization: the int8 graph starts in 0.04 s instead of 0.2 s (the optimizer folds every weight to
  float32 first) and then embeds as fast; the vectors differ from the optimized graph's by 2e-7 at most.
- Batches are cut to about BATCH_TOKENS padded word pieces: 32 full-window passages in one run embed at half
  the rate of 4 (the attention scores of a big batch no longer fit the CPU's caches). Short texts still go
  `batch_size` at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.embeddings.base import Progress, normalise
from agent.embeddings.tokens import WordPieceCounter

BATCH_TOKENS = 1024  # rows x padded width per onnxruntime run


class OnnxEmbedder:
    """An ONNX sentence encoder on the CPU with every core; batches hold texts of similar length."""

    def __init__(self, model: str, graph: Path, tokenizer_json: Path, dim: int, max_tokens: int = 256,
                 batch_size: int = 32, threads: int | None = None, batch_tokens: int = BATCH_TOKENS) -> None:
        self.model = model
        self.dim = dim
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.tokens = WordPieceCounter(tokenizer_json)
        self._graph = graph
        self._threads = threads or os.cpu_count() or 1
        self._tokenizer = _truncating_tokenizer(tokenizer_json, max_tokens)
        self._session: Any = None
        self._inputs: set[str] = set()
        self._lock = threading.Lock()  # the first embed may come from a loader thread and a search at once

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        session = self._open()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        # Longest first, as sentence-transformers does: padding is then at most one batch's spread of lengths.
        order = np.argsort(-lengths, kind="stable")
        for rows in self._batches(order, lengths):
            out[rows] = self._run(session, [encodings[i] for i in rows], int(lengths[rows].max()))
            if progress:
                progress(len(rows))
        return normalise(out)

    def _batches(self, order: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        """Consecutive runs of `order` (longest first): at most batch_size rows and about batch_tokens padded
        word pieces each, so long passages go a few at a time and short ones many at a time."""
        out: list[np.ndarray] = []
        start = 0
        while start < len(order):
            width = max(int(lengths[order[start]]), 1)  # the longest of its batch: it pads the others to this
            size = max(1, min(self.batch_size, self.batch_tokens // width))
            out.append(order[start : start + size])
            start += size
        return out

    def _run(self, session: Any, encodings: list[Any], width: int) -> np.ndarray:
        ids = np.zeros((len(encodings), width), dtype=np.int64)  # 0 is [PAD] in BERT vocabularies
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        states = session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        weights = mask[:, :, None].astype(np.float32)
        return (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    def _open(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                # Idle threads sleep instead of spinning: the bot shares its cores with Milvus, SQL and parsing.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # see the top
                options.log_severity_level = 3  # warnings about unused initializers are noise to a user
                self._session = ort.InferenceSession(str(self._graph), options, providers=["CPUExecutionProvider"])
                self._inputs = {i.name for i in self._session.get_inputs()}
            return self._session


def _truncating_tokenizer(tokenizer_json: Path, max_tokens: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.enable_truncation(max_tokens)  # the model's window, [CLS] and [SEP] included, as sentence-transformers cuts
    tok.no_padding()  # each batch pads to its own longest text
    return tok
