"""Uploaded Slack files as loader inputs: the bytes are fetched with the bot token only when the loader reads
them, after it has checked the size Slack reported and the type, so nothing too large or unreadable is fetched."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from agent import FileRejected, InputFile, reader_for

LOGIN_PAGE = ("Slack sent a sign-in page instead of the file: the bot token may not read files. Add the "
              "files:read scope under OAuth & Permissions, reinstall the app, and upload the file again")


def slack_input(file: dict[str, Any], token: str, max_bytes: int, timeout: float = 60.0) -> InputFile:
    """An InputFile for a Slack file object (from an event or files.info)."""
    name = str(file.get("name") or file.get("title") or file.get("id") or "upload")
    url = file.get("url_private_download") or file.get("url_private")

    def read() -> bytes:
        reader_for(name)  # an unsupported type is reported without downloading it
        if file.get("is_external") or not url:
            raise FileRejected("it is a link to an external file, not an upload; upload the file itself")
        return download(str(url), token, max_bytes, timeout, html_expected=file.get("mimetype") == "text/html")

    size = file.get("size")
    return InputFile(name, read, int(size) if isinstance(size, int) else None)


def download(url: str, token: str, max_bytes: int, timeout: float = 60.0, html_expected: bool = False) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (Slack's https URL)
            kind = response.headers.get("Content-Type", "")
            if kind.startswith("text/html") and (not html_expected or response.geturl() != url):
                raise FileRejected(LOGIN_PAGE)
            data: bytes = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise FileRejected(f"Slack refused the download (HTTP {exc.code}); check the files:read scope") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FileRejected(f"the download from Slack failed ({reason}); upload it again later") from exc
    if len(data) > max_bytes:
        raise FileRejected(f"too large: more than {max_bytes / 1e6:.0f} MB (set MEMBOT_MAX_FILE_MB to change it)")
    return data
