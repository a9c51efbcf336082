"""Bookkeeping for event handling: ids already seen (a replayed event is not answered twice) and handlers still
at work (shutdown waits for them, so a started turn still posts its reply)."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class Recent:
    """The last `size` ids added, for duplicate checks in constant memory."""

    def __init__(self, size: int = 4096) -> None:
        self._order: deque[int] = deque(maxlen=size)
        self._ids: set[int] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def add(self, key: int) -> bool:
        """Remember `key`; False when it was already there."""
        if key in self._ids:
            return False
        if len(self._order) == self._order.maxlen:
            self._ids.discard(self._order[0])
        self._order.append(key)
        self._ids.add(key)
        return True


class Inflight:
    """`async with inflight:` around each handler; `await inflight.idle()` returns once none is running."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> None:
        self._count += 1
        self._idle.clear()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._count -= 1
        if not self._count:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()
