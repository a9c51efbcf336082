"""What a serving process sets up once: logging, and stopping on Ctrl-C or SIGTERM (docker stop, systemd) alike."""

from __future__ import annotations

import logging
import signal
import threading

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
