"""A small threaded WSGI server for Slack's HTTP Events API (the standard library's, with a deeper backlog)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger("membot.slack")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # the default (5) resets connections when Slack sends a burst


def serve_wsgi(app: Callable[..., Any], host: str, port: int) -> WSGIServer:
    """Listen on host:port (0: any free port) and serve `app` in a daemon thread; `shutdown()` stops it."""
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="slack-http", daemon=True).start()
    return server
