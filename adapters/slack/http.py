"""HTTP mode as a WSGI application: Slack's requests on the events path, GET /health for load balancers.

A body is refused by its declared length before anything of it is read: Slack's events, commands and
interactions are a few KB, so anything near MAX_BODY is not from Slack, and it is not buffered to find out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MAX_BODY = 1_000_000  # bytes


def wsgi_app(app: App, path: str, max_body: int = MAX_BODY) -> WSGIApp:
    slack = SlackRequestHandler(app, path)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")])
            return [b'{"ok":true}']
        refused = _body_refused(environ, max_body)
        if refused is not None:
            status, text = refused
            start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
            return [text]
        return slack(environ, start_response)  # type: ignore[arg-type]

    return application


def _body_refused(environ: dict[str, Any], max_body: int) -> tuple[str, bytes] | None:
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if not declared.isdigit():  # wsgiref cannot read a chunked body, and no length means no bound
        return "411 Length Required", b"a Content-Length is required"
    if int(declared) > max_body:
        return "413 Payload Too Large", f"the body is larger than {max_body} bytes".encode()
    return None
