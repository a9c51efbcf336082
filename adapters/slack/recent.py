"""A small bounded memory of recent keys: Slack event ids, (channel, ts) pairs, file ids, thread membership.

cachetools keeps the bound (least recently used out first); it is not thread-safe, and Slack's events are
handled on the turn pool's threads, so one lock makes each call, and `first`'s check-and-add, atomic.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

V = TypeVar("V")


class Recent(Generic[V]):
    def __init__(self, size: int = 20_000) -> None:
        self._items: LRUCache[Hashable, V] = LRUCache(size)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value

    def first(self, key: Hashable, value: V) -> bool:
        """Record `key`; True if it was not already there (the first delivery of an event)."""
        with self._lock:
            if key in self._items:
                return False
            self._items[key] = value
            return True
