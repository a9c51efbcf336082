"""The Slack download guard: the bot token goes only to Slack's file hosts. Tests allow the fake file host on
127.0.0.1 (as MEMBOT_SLACK_FILE_HOSTS would) and prove everything else is refused without the token leaving."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapters.slack.files import SLACK_FILE_ORIGINS, check_url, download, slack_input
from agent.errors import FileRejected

TOKEN = "xoxb-download-guard-TOKEN"
BODY = b"The guarded download holds the tide table code NEAP-TIDE-4."


class Host:
    """A tiny HTTP server on 127.0.0.1 that records each request's path and Authorization header."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.seen.append((self.path, self.headers.get("Authorization")))
                status, headers, body = host.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    if value:  # "" leaves a header out: a body that ends when the connection closes
                        self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None: ...

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    slack, elsewhere = Host(), Host()
    yield slack, elsewhere
    slack.close()
    elsewhere.close()


def test_an_allowed_host_gets_the_token(hosts: tuple[Host, Host]) -> None:
    slack, _ = hosts
    slack.routes["/files-pri/T1-F1/a.txt"] = (200, {"Content-Type": "text/plain"}, BODY)
    assert download(f"{slack.origin}/files-pri/T1-F1/a.txt", TOKEN, 10_000, origins=[slack.origin]) == BODY
    assert slack.seen == [("/files-pri/T1-F1/a.txt", f"Bearer {TOKEN}")]


def test_another_host_is_refused_before_connecting(hosts: tuple[Host, Host]) -> None:
    slack, elsewhere = hosts
    elsewhere.routes["/a.txt"] = (200, {}, BODY)
    with pytest.raises(FileRejected, match="not on Slack's file servers"):
        download(f"{elsewhere.origin}/a.txt", TOKEN, 10_000, origins=[slack.origin])
    assert elsewhere.seen == []


def test_a_redirect_to_another_host_is_not_followed(hosts: tuple[Host, Host]) -> None:
    slack, elsewhere = hosts
    for code in (301, 302, 303, 307, 308):
        slack.routes[f"/r{code}"] = (code, {"Location": f"{elsewhere.origin}/stolen"}, b"")
        with pytest.raises(FileRejected, match="not on Slack's file servers"):
            download(f"{slack.origin}/r{code}", TOKEN, 10_000, origins=[slack.origin])
    assert elsewhere.seen == []  # never reached: not with the token, not without it


def test_a_redirect_within_the_allowed_hosts_is_followed(hosts: tuple[Host, Host]) -> None:
    slack, _ = hosts
    slack.routes["/old"] = (302, {"Location": "/files-pri/T1-F2/b.txt"}, b"")
    slack.routes["/files-pri/T1-F2/b.txt"] = (200, {"Content-Type": "text/plain"}, BODY)
    assert download(f"{slack.origin}/old", TOKEN, 10_000, origins=[slack.origin]) == BODY
    assert [auth for _, auth in slack.seen] == [f"Bearer {TOKEN}"] * 2


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://files.slack.com/a.txt", "data:text/plain,hello", "http://files.slack.com/a.txt",
    "https://files.slack.com.evil.example/a.txt", "https://evil.example/?https://files.slack.com/",
    "https://user:pw@files.slack.com/a.txt", "https://files.slack.com:8443/a.txt", "/files-pri/a.txt", "",
])
def test_only_https_on_slack_file_hosts(url: str) -> None:
    with pytest.raises(FileRejected, match="not on Slack's file servers"):
        check_url(url, SLACK_FILE_ORIGINS)


@pytest.mark.parametrize("url", ["https://files.slack.com/files-pri/T1-F1/download/a.pdf",
                                 "https://FILES.SLACK.COM:443/files-pri/T1-F1/a.pdf",
                                 "https://files.slack-gov.com/files-pri/T1-F1/a.pdf"])
def test_slack_file_hosts_pass(url: str) -> None:
    check_url(url, SLACK_FILE_ORIGINS)


def test_a_file_url_in_an_event_reads_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("local secret that must not be loaded")
    forged = {"id": "F1", "name": "secret.txt", "url_private_download": secret.as_uri(), "size": 10}
    with pytest.raises(FileRejected, match=r"\(file://\) is not on Slack's file servers"):
        slack_input(forged, TOKEN, 10_000).read()


def test_the_size_cap_holds_while_streaming(hosts: tuple[Host, Host]) -> None:
    """A body larger than the limit stops the download, also when the server declares no Content-Length."""
    slack, _ = hosts
    slack.routes["/big"] = (200, {"Content-Type": "text/plain"}, b"x" * 50_000)
    with pytest.raises(FileRejected, match="too large: more than 0.01 MB"):
        download(f"{slack.origin}/big", TOKEN, 10_000, origins=[slack.origin])
    slack.routes["/unsized"] = (200, {"Content-Type": "text/plain", "Content-Length": ""}, b"x" * 50_000)
    with pytest.raises(FileRejected, match="too large: more than 0.01 MB"):
        download(f"{slack.origin}/unsized", TOKEN, 10_000, origins=[slack.origin])
    slack.routes["/small"] = (200, {"Content-Type": "text/plain", "Content-Length": ""}, b"x" * 9_000)
    assert download(f"{slack.origin}/small", TOKEN, 10_000, origins=[slack.origin]) == b"x" * 9_000
