"""Removing secrets from text before it is shown or logged: credentials in URIs, and anything shaped like a key.

`scrub` is the one function to call on text from elsewhere (an endpoint's error body, a driver's exception)
before it reaches a person, a channel or a log; `mask_uri` masks one URI for display.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "****"

# scheme://user:password@host -> scheme://user:****@host (and scheme://token@host -> scheme://****@host): the
# userinfo part is whatever precedes the last @ before the host, so a password holding @ or : is masked whole.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^\s/?#@]*(?:@[^\s/?#@]*)*)@")
# ?token=... &password=... in a URI or a form body
_SECRET_PARAM = re.compile(
    r"(?P<key>\b(?:[a-z_-]*(?:token|secret|password|passwd|pwd|api[_-]?key|access[_-]?key|credentials?|signature)"
    r"|key)[\"']?\s*[=:]\s*[\"']?)(?P<value>[^\s&\"',;}]+)",
    re.I,
)
_BEARER = re.compile(r"\b(?P<key>(?:Bearer|Basic|Token)\s+)(?P<value>[A-Za-z0-9._~+/=-]{6,})")
# The shapes of well-known keys: OpenAI/Anthropic-style sk-..., Slack xox?-/xapp-, GitHub, AWS, Google, JWTs.
_KEY_SHAPES = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{8,}|xox[abposre]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)
# A long unbroken run of digits and both cases reads as a random token whatever its prefix (hex digests, one
# case only, and words joined by _ or - are left alone).
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z])"
                         r"[A-Za-z0-9]{32,}(?![A-Za-z0-9])")


def mask_uri(uri: str) -> str:
    """The URI with the password (or a lone token) of its userinfo masked; the user name stays to help debug."""
    return _USERINFO.sub(_mask_userinfo, uri)


def uri_secret(uri: str) -> str | None:
    """The secret part of a URI's userinfo (the password, or a lone token), to hand to `scrub`."""
    match = _USERINFO.search(uri)
    if match is None:
        return None
    user, sep, password = match.group("info").partition(":")
    return password if sep else user


def _mask_userinfo(match: re.Match[str]) -> str:
    info = match.group("info")
    user, sep, _ = info.partition(":")
    if not sep:  # scheme://token@host: a lone userinfo is as secret as a password
        return f"{match.group('scheme')}{MASK}@"
    return f"{match.group('scheme')}{user}:{MASK}@"


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with known `secrets`, URI credentials and anything that looks like a key or token masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = mask_uri(text)
    text = _SECRET_PARAM.sub(lambda m: m.group("key") + MASK, text)
    text = _BEARER.sub(lambda m: m.group("key") + MASK, text)
    text = _KEY_SHAPES.sub(MASK, text)
    return _LONG_TOKEN.sub(MASK, text)


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs each record's message (and its traceback text) before a handler writes it."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        return True
