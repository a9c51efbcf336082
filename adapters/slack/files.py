"""Uploaded Slack files as loader inputs: the bytes are fetched with the bot token only when the loader reads
them, after it has checked the size Slack reported and the type, so nothing too large or unreadable is fetched.

The token goes only to Slack's file hosts over https (an event's `url_private` is data from the network, and
an external file's points anywhere): any other scheme or host is refused before a connection is made, and a
redirect is followed only to those hosts. The download stops as soon as it passes the size limit.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import IO, Any
from urllib.parse import urlsplit

from agent import FileRejected, InputFile, reader_for

# Where Slack serves url_private and url_private_download (commercial Slack and GovSlack).
SLACK_FILE_ORIGINS = ("https://files.slack.com", "https://files.slack-gov.com")
LOGIN_PAGE = ("Slack sent a sign-in page instead of the file: the bot token may not read files. Add the "
              "files:read scope under OAuth & Permissions, reinstall the app, and upload the file again")
CHUNK = 1 << 16


def slack_input(file: dict[str, Any], token: str, max_bytes: int, timeout: float = 60.0,
                origins: Sequence[str] = SLACK_FILE_ORIGINS) -> InputFile:
    """An InputFile for a Slack file object (from an event or files.info)."""
    name = str(file.get("name") or file.get("title") or file.get("id") or "upload")
    url = file.get("url_private_download") or file.get("url_private")

    def read() -> bytes:
        reader_for(name)  # an unsupported type is reported without downloading it
        if file.get("is_external") or not url:
            raise FileRejected("it is a link to an external file, not an upload; upload the file itself")
        return download(str(url), token, max_bytes, timeout, html_expected=file.get("mimetype") == "text/html",
                        origins=origins)

    size = file.get("size")
    return InputFile(name, read, int(size) if isinstance(size, int) else None, ref=str(file.get("id") or ""))


def origin_of(url: str) -> str:
    """scheme://host[:port], lower case, the default port left out."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    default = {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def check_url(url: str, origins: Sequence[str]) -> None:
    """FileRejected unless `url` is on one of `origins` (and has no user name or password in it)."""
    parts = urlsplit(url)
    allowed = {origin_of(o) for o in origins}
    if parts.username or parts.password or origin_of(url) not in allowed:
        shown = f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else "(no address)"
        raise FileRejected(f"the file's address ({shown}) is not on Slack's file servers, so it was not fetched "
                           f"with the bot token (allowed: {', '.join(sorted(allowed))}; MEMBOT_SLACK_FILE_HOSTS)")


class _GuardedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an allowed origin; the token is copied only there."""

    max_redirections = 5

    def __init__(self, origins: Sequence[str]) -> None:
        self.origins = origins

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        check_url(newurl, self.origins)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(origins: Sequence[str]) -> urllib.request.OpenerDirector:
    """http(s) only: unlike urllib's default opener, no file:, ftp: or data: handler, and no proxy from the
    environment that would see the request."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(), _GuardedRedirects(origins),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def download(url: str, token: str, max_bytes: int, timeout: float = 60.0, html_expected: bool = False,
             origins: Sequence[str] = SLACK_FILE_ORIGINS) -> bytes:
    check_url(url, origins)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with _opener(origins).open(request, timeout=timeout) as response:
            kind = response.headers.get("Content-Type", "")
            if kind.startswith("text/html") and (not html_expected or response.geturl() != url):
                raise FileRejected(LOGIN_PAGE)
            return _read_capped(response, max_bytes)
    except urllib.error.HTTPError as exc:
        raise FileRejected(f"Slack refused the download (HTTP {exc.code}); check the files:read scope") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FileRejected(f"the download from Slack failed ({reason}); upload it again later") from exc


def _read_capped(response: Any, max_bytes: int) -> bytes:
    """The body, in chunks, stopping once it passes `max_bytes` (a Content-Length over it stops it at once)."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FileRejected(_too_large(max_bytes))
    parts: list[bytes] = []
    total = 0
    while chunk := response.read(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise FileRejected(_too_large(max_bytes))
        parts.append(chunk)
    return b"".join(parts)


def _too_large(max_bytes: int) -> str:
    return f"too large: more than {max_bytes / 1e6:g} MB (set MEMBOT_MAX_FILE_MB to change it)"
