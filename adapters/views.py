"""How sources and search results look in a terminal."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from agent import display

if TYPE_CHECKING:  # types only: importing them at run time would load the agent service and its stack
    from agent import AgentSummary, Document, MemoryView, SearchPage, SourceSummary


def sources_table(summaries: list[SourceSummary]) -> None:
    if not summaries:
        click.echo("No sources yet. Load one: membot load directory --name NAME --input-files FILE")
        return
    rows = [("name", "files", "documents", "passages", "embedding model", "updated")]
    for s in summaries:
        src = s.source
        rows.append((src.name, str(s.files), str(s.documents), str(s.passages),
                     f"{src.embedding_model} ({src.embedding_dim})", src.updated_at.strftime("%Y-%m-%d %H:%M")))
    _table(rows)


def source_detail(summary: SourceSummary, documents: list[Document], search_mode: str = "") -> None:
    src = summary.source
    click.echo(f"Source {display(src.name)}: {summary.files} files, {summary.documents} documents, "
               f"{summary.passages} passages")
    click.echo(f"Embedding model: {src.embedding_model} ({src.embedding_dim} dimensions), "
               f"chunks of up to {src.chunk_tokens} tokens")
    rows = [("file", "pages", "passages", "bytes", "sha256", "loaded")]
    for d in documents:
        rows.append((d.file_name, str(d.page_count), str(d.passage_count), str(d.size_bytes),
                     d.content_hash[:12], d.created_at.strftime("%Y-%m-%d %H:%M")))
    _table(rows)
    if search_mode:
        click.echo(f"Search: {search_mode}")


def search_results(result: SearchPage) -> None:
    if not result.total:
        searched = f" (searched {result.searched} passages)" if result.searched else ""
        click.echo(f"No results for {result.query!r}{searched}.")
        return
    if not result.hits:
        click.echo(f"Page {result.page} is past the end: {result.total_text} results in {result.pages_text} pages.")
        return
    first = (result.page - 1) * result.per_page + 1
    click.echo(f"Showing {first}-{first + len(result.hits) - 1} of {result.total_text} results "
               f"(page {result.page}/{result.pages_text}) for {result.query!r}")
    for n, hit in enumerate(result.hits, start=first):
        where = f"{display(hit.file_name)}, page {hit.page}" if hit.page else display(hit.file_name)
        click.echo(f"\n[{n}] score {hit.score:.3f}  {hit.label}: {where}")
        click.echo(textwrap.indent(textwrap.fill(" ".join(hit.text.split()), 100), "    "))


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    rows = [tuple(display(cell) for cell in row) for row in rows]  # a newline in a name must not forge a row
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def agents_table(summaries: list[AgentSummary]) -> None:
    if not summaries:
        click.echo("No agents yet. Start one: membot run --agent NAME")
        return
    rows = [("name", "persona", "messages", "sources", "updated")]
    for s in summaries:
        a = s.agent
        rows.append((a.name, a.persona_preset, str(s.messages), ", ".join(s.sources) or "-",
                     a.updated_at.strftime("%Y-%m-%d %H:%M")))
    _table(rows)


def memory_view(view: MemoryView, out: Callable[[str], None] = click.echo) -> None:
    for block in view.blocks:
        title = f"{block.label} ({block.title})" if block.title else block.label
        out(f"[{title}] {len(block.value)}/{block.limit} characters")
        out(textwrap.indent(block.value, "    "))
    if view.summary:
        out(f"Summary of earlier conversation: {view.summary}")
    out(f"Recall memory: {view.messages} messages ({view.in_context} in context). Archival memory: "
               f"{view.archival} passages. Attached sources: {', '.join(view.sources) or 'none'}.")
