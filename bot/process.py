"""What a serving process sets up once: logging, and stopping on Ctrl-C or SIGTERM (docker stop, systemd) alike."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from agent.stopping import StopRequest

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging() -> None:
    """Log INFO and up to stderr, unless logging was set up already (by a test, or the embedding app)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=FORMAT)


def sigterm_interrupts() -> None:
    """Make SIGTERM raise KeyboardInterrupt, like Ctrl-C, so one shutdown path runs: the work in progress
    finishes and the stores close. Signal handlers can only be set from the main thread."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def wait_until_stopped() -> None:
    """Block the main thread until Ctrl-C or SIGTERM."""
    sigterm_interrupts()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


@contextmanager
def ctrl_c_between_steps(notice: str, quit_notice: str) -> Iterator[StopRequest]:
    """Turn the first Ctrl-C into a StopRequest that long work honours at its next safe point, and a second one
    into an exit on the spot, as kill -9 would (what that leaves is recovered by the next run: loads record each
    file before they write it). Neither raises KeyboardInterrupt wherever the main thread happens to be: inside a
    gRPC call to Milvus (Lite runs its server in this process) that leaves the client's locks held, and the
    cleanup that follows (taking back an unfinished file) then waits forever."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def again(signum: int, frame: FrameType | None) -> None:
        print(quit_notice, file=sys.stderr, flush=True)
        os._exit(130)

    def first(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, again)
        print(notice, file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
