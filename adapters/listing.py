"""The core's listings as Markdown for the chat platforms, in one place: each adapter's format.py then makes it
platform text (Slack mrkdwn, Discord Markdown)."""

from __future__ import annotations

from agent import SourceItem, SourcesAnswer

NO_SOURCES = "No sources yet. Upload a file (PDF, text, Markdown, .docx, .html) to a channel I am in."


def sources_markdown(items: list[SourceItem]) -> str:
    if not items:
        return NO_SOURCES
    lines = ["**Sources this channel can use** (attached to this channel: marked ✓)"]
    for s in items:
        only = " (this channel only)" if s.channel_only else ""
        lines.append(f"{'✓' if s.attached else '·'} `{s.name}`{only}: {s.files} file(s), {s.documents} documents, "
                     f"{s.passages} passages")
    return "\n".join(lines)


def answer_markdown(answer: SourcesAnswer) -> str:
    return sources_markdown(answer.listing) if answer.listing is not None else answer.text
