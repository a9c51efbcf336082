"""A small bounded memory of recent keys: Slack event ids, (channel, ts) pairs, file ids, thread membership."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def first(self, key: Hashable, value: V) -> bool:
        """Record `key`; True if it was not already there (the first delivery of an event)."""
        with self._lock:
            if key in self._items:
                return False
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return True
