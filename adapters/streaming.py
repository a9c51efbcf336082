"""A reply shown while the model writes it: the core's "draft" events (the growing text of send_message) become
one message, posted at the first draft and edited at most once per `interval` (the platform's edit limit); the
"reply" event edits it to the final text. The platform gives `post` and `edit`; replies this shows in full are
marked, so the adapter posts only the others."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from agent import TurnEvent

log = logging.getLogger(__name__)
Handle = TypeVar("Handle")
DRAFTING = " …"


class Streamer(Generic[Handle]):
    """An EventSink; call it from the turn's thread. `pieces` splits a text as the platform posts it."""

    def __init__(self, post: Callable[[str], Handle], edit: Callable[[Handle, str], object],
                 pieces: Callable[[str], list[str]], interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.post, self.edit, self.pieces = post, edit, pieces
        self.interval, self.clock = interval, clock
        self.shown: list[bool] = []  # per reply, in order: whether it was delivered as a streamed message
        self._handle: Handle | None = None
        self._last = 0.0
        self._failed = False

    def __call__(self, event: TurnEvent) -> None:
        if event.kind == "draft" and not self._failed:
            self._draft(event.text)
        elif event.kind == "reply":
            self.shown.append(self._finish(event.text))

    def _draft(self, text: str) -> None:
        first = (self.pieces(text) or [""])[0]
        if not first.strip():
            return
        now = self.clock()
        if self._handle is not None and now - self._last < self.interval:
            return
        try:
            if self._handle is None:
                self._handle = self.post(first + DRAFTING)
            else:
                self.edit(self._handle, first + DRAFTING)
        except Exception as exc:  # the final reply is still posted the ordinary way
            log.warning("could not show a streamed draft: %s", exc)
            self._failed = True
            return
        self._last = now

    def _finish(self, reply: str) -> bool:
        """The draft message becomes the reply (its first piece; the rest posted after it)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return False
        parts = self.pieces(reply) or [" "]
        try:
            self.edit(handle, parts[0])
            for part in parts[1:]:
                self.post(part)
        except Exception as exc:
            log.warning("could not finish a streamed reply: %s", exc)
            return False
        return True

    def unshown(self, replies: list[str]) -> list[str]:
        """The replies still to post once the turn is over."""
        return [r for n, r in enumerate(replies) if not (n < len(self.shown) and self.shown[n])]
