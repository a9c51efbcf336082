"""Recall memory search: every message ever exchanged, by text or by date, with true totals and pages."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from agent.db.models import Message, as_utc
from agent.errors import ToolFailure

PER_PAGE = 5


def visible_text(message: Message) -> str:
    """What a person saw: a user's words or the agent's send_message text; empty for everything else."""
    if message.role == "user" and message.kind == "message":
        return message.content
    if message.role == "assistant" and message.tool_calls:
        sent = [_sent_text(c["arguments"]) for c in json.loads(message.tool_calls) if c.get("name") == "send_message"]
        return "\n".join(s for s in sent if s)
    return ""


def _sent_text(raw: str) -> str:
    try:
        args = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return ""
    text = args.get("message") if isinstance(args, dict) else None
    return text if isinstance(text, str) else ""


def search_text(session: Session, agent_id: int, query: str, page: int) -> str:
    needle = query.strip().lower()
    if not needle:
        raise ToolFailure("conversation_search needs a non-empty query.")
    pattern = f"%{needle}%"
    rows = session.exec(
        select(Message).where(Message.agent_id == agent_id,
                              or_(func.lower(Message.content).like(pattern),
                                  func.lower(Message.tool_calls).like(pattern)))
        .order_by(col(Message.id))
    ).all()
    hits = [m for m in rows if needle in visible_text(m).lower()]
    return _page(hits, page, f"matching {query!r}")


def search_dates(session: Session, agent_id: int, start_date: str, end_date: str, page: int) -> str:
    start, end = _day(start_date), _day(end_date)
    if end < start:
        raise ToolFailure(f"end_date {end_date} is before start_date {start_date}.")
    lo = datetime.combine(start, time.min, tzinfo=timezone.utc)
    hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc)
    rows = session.exec(select(Message).where(Message.agent_id == agent_id, Message.created_at >= lo,
                                              Message.created_at < hi).order_by(col(Message.id))).all()
    hits = [m for m in rows if visible_text(m)]
    return _page(hits, page, f"from {start_date} to {end_date}")


def count(session: Session, agent_id: int) -> int:
    return int(session.exec(select(func.count()).select_from(Message).where(Message.agent_id == agent_id)).one())


def _page(hits: list[Message], page: int, what: str) -> str:
    total = len(hits)
    if total == 0:
        return f"No messages {what}."
    pages = math.ceil(total / PER_PAGE)
    page = max(1, page or 1)
    if page > pages:
        return f"Page {page} is past the end: {total} messages {what} in {pages} page(s)."
    first = (page - 1) * PER_PAGE
    lines = [f"Showing {first + 1}-{min(first + PER_PAGE, total)} of {total} messages {what} (page {page}/{pages}):"]
    for m in hits[first : first + PER_PAGE]:
        who = m.author or ("you" if m.role == "assistant" else "user")
        stamp = as_utc(m.created_at).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"[{stamp}] {who}: {visible_text(m)}")
    return "\n".join(lines)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ToolFailure(f"{text!r} is not a date; use YYYY-MM-DD.") from exc
