"""The MemGPT tool set: replying, editing core memory, and searching recall and archival memory."""

from __future__ import annotations

from agent.errors import ToolFailure
from agent.memory import recall
from agent.memory.archival import format_page
from agent.tools.context import ToolContext
from agent.tools.registry import Tool, tool


@tool(chains=False)
def send_message(ctx: ToolContext, message: str) -> str:
    """Send a message: the only text people see."""
    if not message.strip():
        raise ToolFailure("send_message needs a non-empty message.")
    ctx.sent.append(message)
    return "Sent."


@tool()
def core_memory_append(ctx: ToolContext, name: str, content: str) -> str:
    """Append a line to a core memory block."""
    return ctx.core.append(name, content, ctx.speaker)


@tool()
def core_memory_replace(ctx: ToolContext, name: str, old_content: str, new_content: str) -> str:
    """Replace exact text in a core memory block."""
    return ctx.core.replace(name, old_content, new_content, ctx.speaker)


@tool(paged=True)
def conversation_search(ctx: ToolContext, query: str, page: int = 1) -> str:
    """Search all past messages."""
    return recall.search_text(ctx.session, int(ctx.agent.id or 0), query, page)


@tool(paged=True)
def conversation_search_date(ctx: ToolContext, start_date: str, end_date: str, page: int = 1) -> str:
    """Messages between two dates (YYYY-MM-DD)."""
    return recall.search_dates(ctx.session, int(ctx.agent.id or 0), start_date, end_date, page)


@tool()
def archival_memory_insert(ctx: ToolContext, content: str) -> str:
    """Save text to archival memory."""
    return ctx.archival.insert(content)


@tool(paged=True)
def archival_memory_search(ctx: ToolContext, query: str, page: int = 1, source: str | None = None) -> str:
    """Search archival notes and attached sources."""
    return format_page(ctx.archival.search(query, page, source))


BASE_TOOLS: list[Tool] = [send_message, core_memory_append, core_memory_replace, conversation_search,
                          conversation_search_date, archival_memory_insert, archival_memory_search]
