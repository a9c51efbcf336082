"""Overlap the stages of a load: the next file is read and parsed while this one embeds, and each slice of
vectors is stored while the next slice embeds.

onnxruntime (and Milvus, through its client) let go of the GIL while they work, so a worker thread parsing with
pypdf or waiting on an insert runs beside them. Only one file is read ahead, so memory stays at two files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np

from agent.embeddings.base import Embedder, Progress
from agent.stopping import StopRequest

T = TypeVar("T")
P = TypeVar("P")
SLICE = 128  # texts embedded before their rows are handed to the store: 4 batches of 32


class ReadAhead(Generic[T, P]):
    """Yields (item, Future of prepare(item)) in order, with the next item's prepare already running. The first
    item's prepare starts when the ReadAhead is made, so it overlaps whatever the caller does before iterating."""

    def __init__(self, items: Sequence[T], prepare: Callable[[T], P]) -> None:
        self._items = items
        self._prepare = prepare
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="membot-read")
        self._first = self._pool.submit(self._prepare, self._items[0]) if self._items else None

    def __iter__(self) -> Iterator[tuple[T, Future[P]]]:
        pending, self._first = self._first, None
        for i, item in enumerate(self._items):
            assert pending is not None
            current = pending
            pending = self._pool.submit(self._prepare, self._items[i + 1]) if i + 1 < len(self._items) else None
            yield item, current

    def close(self) -> None:
        # Ctrl-C or an error: whatever was read ahead is dropped, and nothing waits for it.
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ReadAhead[T, P]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def embed_and_store(embedder: Embedder, texts: Sequence[str], store: Callable[[int, np.ndarray], None],
                    progress: Progress | None = None, size: int | None = None, stop: StopRequest | None = None
                    ) -> None:
    """Embed `texts` a slice at a time and call store(first_index, vectors) for each slice on a worker thread,
    in order, while the next slice embeds. Returns once every slice is stored; the first failure (or a `stop`,
    checked after each slice) is raised after the stores already under way have finished, so a caller can take
    back everything that was written."""
    size = size or SLICE
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="membot-store") as pool:
        writes: list[Future[None]] = []
        try:
            for start in range(0, len(texts), size):
                vectors = embedder.embed(texts[start : start + size], progress)
                if stop:
                    stop.check()
                writes.append(pool.submit(store, start, vectors))
                if writes[-1].done() and writes[-1].exception():
                    break  # the store is failing: stop embedding for nothing
        finally:
            for write in writes:
                write.exception()  # wait for every write before anyone cleans up after us
        for write in writes:
            write.result()
