"""The HTTP server of Slack's HTTP mode, with limits: a bounded pool of request threads (a request beyond the
pool and its queue gets 503 at once instead of one more thread), and a read time-out on every connection, so
slow or unfinished requests cannot pile up threads or memory. The body cap is in the WSGI app (http.py)."""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from adapters.slack.http import WSGIApp

log = logging.getLogger("membot.slack")
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@dataclass(frozen=True)
class HttpLimits:
    threads: int = 16  # requests handled at once
    queued: int = 64  # accepted connections waiting for a thread; beyond them a request gets 503
    read_timeout: float = 10.0  # seconds a connection may stay silent while its request is read


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class BoundedWSGIServer(WSGIServer):
    request_queue_size = 128  # the listen backlog; the default (5) resets connections when Slack sends a burst

    def __init__(self, address: tuple[str, int], limits: HttpLimits) -> None:
        handler = type("Handler", (_QuietHandler,), {"timeout": limits.read_timeout})
        super().__init__(address, handler)
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.threads + limits.queued)
        self._pool = ThreadPoolExecutor(limits.threads, thread_name_prefix="slack-http")

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            self._pool.submit(self._handle, request, client_address)
        except RuntimeError:  # shutting down
            self._slots.release()
            self._refuse(request)

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.settimeout(1.0)
            request.sendall(BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http: request from %s failed", client_address, exc_info=True)  # time-outs, resets

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def make_http_server(host: str, port: int, app: WSGIApp, limits: HttpLimits | None = None) -> BoundedWSGIServer:
    server = BoundedWSGIServer((host, port), limits or HttpLimits())
    server.set_app(app)
    return server
