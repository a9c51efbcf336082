"""Serve Slack's HTTP Events API in a daemon thread, on the bounded server of adapters/slack/http_server.py."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from adapters.slack.http import WSGIApp
from adapters.slack.http_server import make_http_server


def serve_wsgi(app: WSGIApp, host: str, port: int) -> WSGIServer:
    """Listen on host:port (0: any free port) and serve `app` in a daemon thread; `shutdown()` stops it."""
    server = make_http_server(host, port, app)
    threading.Thread(target=server.serve_forever, name="slack-http", daemon=True).start()
    return server
