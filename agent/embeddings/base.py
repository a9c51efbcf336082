"""The embedding interface every provider implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from agent.embeddings.tokens import TokenCounter

Progress = Callable[[int], None]


class Embedder(Protocol):
    """Turns texts into unit-length vectors. `model` and `dim` are recorded on every source."""

    model: str
    dim: int
    max_tokens: int  # longest input the model reads; longer text is cut by the model

    @property
    def tokens(self) -> TokenCounter:
        """Counts tokens the way this model does, offline."""
        ...

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Return a float32 array (len(texts), dim), rows normalised to length 1."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms
