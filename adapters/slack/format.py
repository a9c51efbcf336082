"""Slack's text rules in one place: the model's Markdown as Slack mrkdwn in pieces of at most 4,000
characters, and Slack's markup (<@U1>, <url|text>, &amp;) back to plain text for the agent."""

from __future__ import annotations

import re
from collections.abc import Callable

from adapters.text import FENCE, split_message

MESSAGE_LIMIT = 4000

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_QUOTE = re.compile(r"^(\s*(?:>\s?)+)")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_IMAGE = re.compile(r"!\[([^\]]*)\]\((\S+?)(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]+)\]\((\S+?)(?:\s+\"[^\"]*\")?\)")
_BOLD_ITALIC = re.compile(r"\*\*\*(?!\s)(.+?)(?<!\s)\*\*\*")
_BOLD = re.compile(r"(\*\*|__)(?!\s)(.+?)(?<!\s)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?![\s*])([^*\n]+?)(?<![\s*])\*(?![*\w])")
_STRIKE = re.compile(r"~~(?!\s)(.+?)(?<!\s)~~")
_SLACK_TOKEN = re.compile(r"<([^<>]+)>")


def escape(text: str) -> str:
    """Slack's three control characters; also keeps the model from pinging @channel or a person."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Markdown as Slack mrkdwn: **bold** → *bold*, [text](url) → <url|text>, headings → bold lines, bullets → •.
    Code blocks and inline code keep their text (only the fence's language tag goes: Slack would show it)."""
    out: list[str] = []
    in_code = False
    for line in markdown.split("\n"):
        if line.strip().startswith(FENCE):
            in_code = not in_code
            out.append(line[: line.index(FENCE) + len(FENCE)] if in_code else line)
        elif in_code:
            out.append(escape(line))
        else:
            out.append(_line(line))
    return "\n".join(out)


def pieces(markdown: str) -> list[str]:
    """The mrkdwn messages to post for one reply, each within Slack's limit, code blocks intact."""
    return split_message(to_mrkdwn(markdown), MESSAGE_LIMIT)


def _line(line: str) -> str:
    heading = _HEADING.match(line)
    if heading:
        title = _BOLD.sub(lambda m: m.group(2), heading.group(1))
        return "*" + _inline(title).strip("*") + "*"
    if _RULE.match(line):
        return "──────────"
    quote = _QUOTE.match(line)
    prefix = ""
    if quote:  # the quote marker must stay a raw ">" for Slack to draw a quote
        prefix, line = "> ", line[quote.end():]
    bullet = _BULLET.match(line)
    if bullet:
        prefix += f"{bullet.group(1)}• "
        line = line[bullet.end():]
    return prefix + _inline(line)


def _inline(text: str) -> str:
    kept: list[str] = []  # code spans and URLs, held out of the emphasis rules

    def hold(raw: str) -> str:
        kept.append(raw)
        return f"\x00{len(kept) - 1}\x00"

    def link(url: str, label: str) -> str:
        if not re.match(r"^(https?|mailto):", url):
            return label if label == url else f"{label} ({url})"
        return f"<{hold(url)}|{label.replace('|', '¦')}>"

    text = escape(_INLINE_CODE.sub(lambda m: hold(escape(m.group(0))), text))
    text = _IMAGE.sub(lambda m: link(m.group(2), m.group(1) or m.group(2)), text)
    text = _LINK.sub(lambda m: link(m.group(2), m.group(1)), text)
    # Bold is marked with \x01 until single-star italics are done, so the two never mix.
    text = _BOLD_ITALIC.sub("\x01_\\1_\x01", text)
    text = _BOLD.sub("\x01\\2\x01", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text).replace("\x01", "*")
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)


def from_slack(text: str, name_of: Callable[[str], str], bot_user_id: str = "") -> str:
    """Slack's markup as plain text: mentions as @Name (the bot's own dropped), links as text (url)."""

    def plain(match: re.Match[str]) -> str:
        body = match.group(1)
        target, _, label = body.partition("|")
        if target.startswith("@"):
            user = target[1:]
            return "" if user == bot_user_id else f"@{label or name_of(user)}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!subteam^"):
            return label or "@team"
        if target.startswith("!"):
            return f"@{target[1:]}"
        if target.startswith("mailto:"):
            return label or target[len("mailto:"):]
        return f"{label} ({target})" if label and label != target else target

    text = _SLACK_TOKEN.sub(plain, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", text).strip()
