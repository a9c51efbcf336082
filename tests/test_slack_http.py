"""Slack's HTTP mode under hostile clients: an oversized body is refused before it is read, silent connections
time out, the request threads are bounded, and the server listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_bolt import App

from adapters.slack.http import MAX_BODY, wsgi_app
from adapters.slack.http_server import BoundedWSGIServer, HttpLimits, make_http_server
from tests.conftest import make_settings

SECRET = "http-mode-signing-secret"


def bolt_app() -> App:
    app = App(token="xoxb-test", signing_secret=SECRET, token_verification_enabled=False,
              request_verification_enabled=True)

    @app.event("app_mention")
    def _mention(ack) -> None:  # type: ignore[no-untyped-def]
        ack()

    return app


@pytest.fixture
def server() -> Iterator[BoundedWSGIServer]:
    srv = make_http_server("127.0.0.1", 0, wsgi_app(bolt_app(), "/slack/events"),
                           HttpLimits(threads=3, queued=2, read_timeout=1.5))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def connect(srv: BoundedWSGIServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=10)
    return sock


def answer(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def signed_request(body: bytes) -> bytes:
    stamp = str(int(time.time()))
    signature = "v0=" + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return (f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-Slack-Request-Timestamp: {stamp}\r\nX-Slack-Signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def test_a_signed_request_is_answered(server: BoundedWSGIServer) -> None:
    with connect(server) as sock:
        sock.sendall(signed_request(json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()))
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.0 200") and b"c-123" in reply


def test_an_oversized_body_is_refused_before_it_is_read(server: BoundedWSGIServer) -> None:
    with connect(server) as sock:
        sock.sendall(f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: {200_000_000}\r\n\r\n".encode())
        sock.sendall(b"x" * 1000)  # the 200 MB never follow: the answer must not wait for them
        reply = answer(sock)
    assert reply.split(b"\r\n", 1)[0].endswith(b"413 Payload Too Large"), reply[:200]
    assert f"larger than {MAX_BODY} bytes".encode() in reply


def test_a_body_without_length_is_refused(server: BoundedWSGIServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        reply = answer(sock)
    assert b"411 Length Required" in reply.split(b"\r\n", 1)[0]


def test_silent_connections_time_out_and_threads_stay_bounded(server: BoundedWSGIServer) -> None:
    threads_before = threading.active_count()
    idle = [connect(server) for _ in range(12)]  # open, send nothing: a slow-loris client
    try:
        time.sleep(0.5)
        # Three threads read (and wait), two connections wait in the queue, the other seven get 503 at once.
        assert threading.active_count() - threads_before <= 3
        # The read time-out (1.5 s) frees the threads: every connection ends, with 503 or closed, none hangs.
        started = time.monotonic()
        replies = [answer(sock) for sock in idle]
        assert sum(r.startswith(b"HTTP/1.1 503") for r in replies) == 7
        assert [r for r in replies if not r.startswith(b"HTTP/1.1 503")] == [b""] * 5
        assert time.monotonic() - started < 9
        with connect(server) as sock:  # and the server answers again
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b'{"ok":true}' in answer(sock)
    finally:
        for sock in idle:
            sock.close()


def test_http_mode_listens_on_localhost_by_default(home: Path) -> None:
    assert make_settings(home).slack_host == "127.0.0.1"
    assert make_settings(home, MEMBOT_SLACK_HOST="0.0.0.0").slack_host == "0.0.0.0"
