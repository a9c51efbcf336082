"""Bookkeeping for event handling: handlers still at work (shutdown waits for them, so a started turn still posts
its reply)."""

from __future__ import annotations

import asyncio
from types import TracebackType


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
