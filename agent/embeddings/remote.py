"""Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint, through the `openai` package."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.embeddings.base import Progress, normalise
from agent.embeddings.tokens import EstimateCounter
from agent.errors import ConfigError, UserError
from agent.redact import scrub

KNOWN_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAIEmbedder:
    def __init__(self, model: str, api_key: str | None, base_url: str | None, batch_size: int = 64) -> None:
        if not api_key and not base_url:
            raise ConfigError(
                "MEMBOT_EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for a local server)."
            )
        from openai import OpenAI

        self.model = model
        self.batch_size = batch_size
        self.max_tokens = 8191
        self.tokens = EstimateCounter()
        self._client = OpenAI(api_key=api_key or "not-needed", base_url=base_url, max_retries=3, timeout=60)
        self.dim = KNOWN_DIMS.get(model, 0) or len(self._call(["dimension probe"])[0])

    def _call(self, texts: list[str]) -> list[list[float]]:
        import openai

        try:
            response = self._client.embeddings.create(model=self.model, input=texts)
        except openai.APIError as exc:
            raise UserError(f"The embedding endpoint failed for model {self.model}: {exc.__class__.__name__}: "
                            f"{scrub(str(getattr(exc, 'message', exc)))}") from exc
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            rows.extend(self._call(batch))
            if progress:
                progress(len(batch))
        return normalise(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))
