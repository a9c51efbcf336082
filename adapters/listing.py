"""The core's answers as Markdown for the chat platforms, in one place: source listings, a channel's memory and
load reports. Each adapter's format.py then makes it platform text (Slack mrkdwn, Discord Markdown)."""

from __future__ import annotations

from agent import PERSON_PREFIX, LoadReport, MemoryView, ScheduleAnswer, SourceItem, SourcesAnswer

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


def memory_markdown(agent_name: str, view: MemoryView) -> str:
    lines = [f"**Memory of this channel's agent** ({agent_name})"]
    for block in view.blocks:
        title = f"person {block.title}" if block.label.startswith(PERSON_PREFIX) else block.label
        lines.append(f"*{title}* ({len(block.value)}/{block.limit} characters)\n```\n{block.value or ' '}\n```")
    lines.append(f"Recall: {view.messages} messages ({view.in_context} in context). Archival: {view.archival} "
                 f"saved passages. Attached sources: {', '.join(view.sources) or 'none'}.")
    return "\n".join(lines)


def load_report_markdown(name: str, report: LoadReport, shareable: bool = True) -> str:
    """The per-upload answer: what was loaded (under which name, seen by whom), what replaced an older version,
    then one line per file that failed or was skipped."""
    lines = []
    loaded = report.of("loaded")
    if loaded:
        lines.append(f"Loaded {sum(o.passages for o in loaded)} passages and {sum(o.documents for o in loaded)} "
                     f"documents from {name}")
    for outcome in report.of("replaced"):
        lines.append(f"`{outcome.name}` in `{name}` replaced: {outcome.before} passages before, "
                     f"{outcome.passages} now.")
    if lines and report.asked and report.asked.lower() != name.lower():
        lines.append(f"Another source is named `{report.asked}`, so this one is `{name}`.")
    if lines and report.channel_only:
        lines.append("Only this channel can see it; `/sources share " + name + "` shows it to the workspace."
                     if shareable else "Only this conversation can see it.")
    for outcome in report.of("unchanged"):
        lines.append(f"`{outcome.name}` is already loaded as `{name}`; nothing added.")
    for outcome in report.of("failed"):
        lines.append(f"Could not load `{outcome.name}`: {outcome.reason}")
    return "\n".join(lines) or f"Nothing was loaded from {name}."


def schedule_markdown(answer: ScheduleAnswer) -> str:
    if answer.listing is None:
        return answer.text
    if not answer.listing:
        return f"No schedules in this channel (time zone {answer.zone}). Add one: `/schedule add WHEN WHAT`."
    lines = [f"**Schedules in this channel** (time zone {answer.zone})"]
    lines += [f"• {item.description}{f' ({item.due})' if item.due else ''}" for item in answer.listing]
    return "\n".join(lines)
