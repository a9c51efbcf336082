"""A request to stop long work (a load) at its next safe point, instead of wherever an interrupt happens to land."""

from __future__ import annotations

import threading


class StopRequest:
    """Set from anywhere (a signal handler, another thread); the work calls check() between its steps, where
    stopping leaves nothing half-done that it cannot take back."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was asked for: callers already take back their work on it."""
        if self._event.is_set():
            raise KeyboardInterrupt
