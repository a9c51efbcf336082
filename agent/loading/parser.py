"""Parsing files into pages of text, with the expansion limits enforced.

PDF, .docx and HTML parsers cannot be bounded from inside: one call can run for minutes or take gigabytes. They
run in parser processes (spawned, never forked from a process holding Milvus and model threads) whose address
space is capped with RLIMIT_AS and which are killed when a file takes longer than its time limit. Parsing there
also leaves the bot's own process free: a bomb uploaded in one channel never stalls the others.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from agent.errors import FileRejected
from agent.loading.limits import DEFAULT_LIMITS, ExpansionLimits, check_pages
from agent.loading.readers import ISOLATED, reader_for

MB = 1 << 20


class Parser(Protocol):
    def parse(self, name: str, data: bytes) -> list[str]: ...


class InProcessParser:
    """Parsing in this process: the limits on pages, text and decompressed bytes hold, time and memory do not.
    For plain text (bounded by the file size) and for tests of the readers."""

    def __init__(self, limits: ExpansionLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def parse(self, name: str, data: bytes) -> list[str]:
        return check_pages(reader_for(name)(data, self.limits), self.limits)

    def close(self) -> None: ...


class ParserPool:
    """Up to `workers` parser processes, started on first need and reused; one file at a time each."""

    def __init__(self, limits: ExpansionLimits = DEFAULT_LIMITS, workers: int = 2) -> None:
        self.limits = limits
        self._local = InProcessParser(limits)
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False
        self.peak_rss_kb = 0  # the largest resident size a parser process reported (its own getrusage)

    def parse(self, name: str, data: bytes) -> list[str]:
        if not _isolated(name):
            return self._local.parse(name, data)
        with self._slots:
            worker = self._take()
            healthy = False
            try:
                kind, value = worker.run(name, data, self.limits)
                healthy = kind in ("ok", "rejected")
                self.peak_rss_kb = max(self.peak_rss_kb, worker.peak_rss_kb)
            finally:
                if healthy:
                    self._give_back(worker)
                else:
                    worker.kill()
        if kind == "ok":
            return check_pages(value, self.limits)
        raise FileRejected(value)

    def start(self, names: Iterable[str]) -> None:
        """Start a parser process now if one of `names` will need it, so that a new interpreter starting (about
        half a second) overlaps what the command does before its first parse."""
        if not any(_isolated(n) for n in names):
            return
        with self._lock:
            if self._closed or self._idle:
                return
            self._idle.append(_Worker(self.limits.memory_mb))

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the parser pool is closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
        return _Worker(self.limits.memory_mb)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


def _isolated(name: str) -> bool:
    """Whether the file is parsed in a parser process (its reader's time and memory need bounding)."""
    return Path(name).suffix.lower() in ISOLATED


class _Worker:
    def __init__(self, memory_mb: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.memory_mb = memory_mb
        self.peak_rss_kb = 0
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, memory_mb), name="membot-parser", daemon=True)
        self.process.start()
        child.close()

    def alive(self) -> bool:
        return self.process.is_alive()

    def run(self, name: str, data: bytes, limits: ExpansionLimits) -> tuple[str, Any]:
        """("ok", pages), ("rejected", reason) from the reader, or ("failed", reason) when the process had to
        go: it ran out of time or memory, or died."""
        self.conn.send((name, data, limits))
        if not self.conn.poll(limits.seconds):
            return "failed", (f"reading it took longer than {limits.seconds:g} s (the limit; set "
                              "MEMBOT_PARSE_SECONDS to change it)")
        try:
            kind, value, self.peak_rss_kb = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(5)
            return "failed", (f"the parser stopped while reading it (exit code {self.process.exitcode}); it may "
                              f"need more than {self.memory_mb} MB of memory (set MEMBOT_PARSE_MEMORY_MB)")
        if kind == "memory":
            return "failed", (f"reading it needs more than {self.memory_mb} MB of memory (the limit; set "
                              "MEMBOT_PARSE_MEMORY_MB to change it)")
        return kind, value

    def stop(self) -> None:
        self.conn.close()  # the worker sees the end of its input and exits
        self.process.join(5)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


def _peak_kb() -> int:
    """This process's peak resident size. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked
    parent through exec, so a spawned process would report the bot's size as its own."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def serve(conn: Connection, memory_mb: int) -> None:
    """The parser process: read (name, bytes, limits), answer (kind, value, its peak resident KB), until the
    pipe closes."""
    import resource

    if memory_mb > 0:
        limit = memory_mb * MB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import pypdf  # noqa: F401  (most files parsed here are PDFs: imported while the parent still prepares)

    while True:
        try:
            name, data, limits = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", reader_for(name)(data, limits))
        except FileRejected as exc:
            reply = ("rejected", str(exc))
        except MemoryError:
            reply = ("memory", "")
        except Exception as exc:  # a reader bug: report it for this file, keep serving
            reply = ("rejected", f"it could not be read ({exc.__class__.__name__}: {exc})")
        del data
        peak = _peak_kb()
        try:
            conn.send((*reply, peak))
        except MemoryError:
            conn.send(("memory", "", peak))
