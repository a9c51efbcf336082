"""Core memory: named blocks with character limits, always in the prompt, edited by the agent's tools."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from sqlmodel import Session, col, select

from agent.db.models import Block
from agent.db.upsert import insert_ignore
from agent.errors import ToolFailure

log = logging.getLogger(__name__)

PERSONA = "persona"
PERSON_PREFIX = "person:"


@dataclass(frozen=True)
class Speaker:
    """Who said the message being answered: a platform user id and a display name."""

    id: str
    name: str

    @property
    def label(self) -> str:
        return PERSON_PREFIX + self.id


class CoreMemory:
    def __init__(self, session: Session, agent_id: int) -> None:
        self.session = session
        self.agent_id = agent_id
        self.edits: list[tuple[Block, Callable[[str], str]]] = []  # this turn's edits, for `reapply`
        self.pending: dict[str, Block] = {}  # blocks met this turn, inserted at `reapply`
        self._blocks: list[Block] | None = None
        self.titles: dict[str, str] = {}  # new display names of people met this turn, written at `reapply`

    def _stored(self) -> list[Block]:
        """The agent's blocks, read once per CoreMemory (one operation, or one turn: what the turn started with,
        its own edits applied in memory)."""
        if self._blocks is None:
            self._blocks = list(self.session.exec(select(Block).where(Block.agent_id == self.agent_id)
                                                  .order_by(Block.id)).all())
        return self._blocks

    def all(self) -> list[Block]:
        rows = list(self._stored())
        return rows + [b for label, b in self.pending.items() if all(r.label != label for r in rows)]

    def get(self, label: str) -> Block | None:
        return self._row(label) or self.pending.get(label)

    def _row(self, label: str) -> Block | None:
        return next((b for b in self._stored() if b.label == label), None)

    def ensure(self, label: str, value: str = "", title: str = "", limit: int = 2000) -> Block:
        """The block called `label`, inserted with `value` unless it exists: insert-or-get, so two turns (or
        processes) meeting a new person at once both get the one block."""
        block = self._row(label)
        if block is None:
            self.session.flush()
            fresh = Block(agent_id=self.agent_id, label=label, value=value[:limit], title=title, limit=limit)
            insert_ignore(self.session.connection(), Block.__table__,  # type: ignore[attr-defined]
                          fresh.model_dump(exclude={"id"}))
            self._blocks = None  # ours, or the one a concurrent insert won with
            block = self._row(label)
            assert block is not None
        if title and block.title != title:
            block.title = title
            self.session.add(block)
        return block

    def person(self, speaker: Speaker, initial: str = "") -> Block:
        return self.ensure(speaker.label, _person_text(speaker, initial), title=speaker.name)

    def meet(self, speaker: Speaker, initial: str = "") -> Block:
        """Like `person`, but nothing is written until `reapply` (within a turn): a new person's block and a new
        display name stay in memory until then."""
        block = self._row(speaker.label)
        if block is None:
            block = self.pending.get(speaker.label) or Block(agent_id=self.agent_id, label=speaker.label,
                                                             value=_person_text(speaker, initial)[:2000],
                                                             title=speaker.name)
            self.pending[speaker.label] = block
        elif block.title != speaker.name:
            block.title = speaker.name
            self.titles[speaker.label] = speaker.name
        return block

    def resolve(self, label: str, speaker: Speaker | None) -> Block:
        """`human` is whoever is speaking; a person's display name also finds their block."""
        if label == "human" and speaker is not None:
            return self.meet(speaker)
        block = self.get(label)
        if block is None:
            block = next((b for b in self.all() if b.title and b.title.lower() == label.lower()), None)
        if block is None:
            names = ["human"] + [b.label for b in self.all() if not b.label.startswith(PERSON_PREFIX)]
            raise ToolFailure(f"Edit failed: no memory block named {label!r}. Blocks: {', '.join(names)}.")
        return block

    def append(self, label: str, content: str, speaker: Speaker | None) -> str:
        block = self.resolve(label, speaker)
        return self._set(block, lambda value: f"{value}\n{content}" if value else content)

    def replace(self, label: str, old: str, new: str, speaker: Speaker | None) -> str:
        block = self.resolve(label, speaker)
        if not old:
            raise ToolFailure("Edit failed: old_content is empty; use core_memory_append to add text.")
        if old not in block.value:
            raise ToolFailure(f"Edit failed: {old!r} is not in the {label} block. Copy the exact text to replace.")
        return self._set(block, lambda value: value.replace(old, new, 1))

    def _set(self, block: Block, edit: Callable[[str], str]) -> str:
        value = edit(block.value)
        if len(value) > block.limit:
            raise ToolFailure(
                f"Edit failed: Exceeds {block.limit} character limit (requested {len(value)}). Consider "
                "summarizing the block first with core_memory_replace, or saving details to archival memory."
            )
        block.value = value
        self.edits.append((block, edit))
        return f"The {block.label} block now has {len(value)}/{block.limit} characters."

    def reapply(self, session: Session) -> None:
        """Write this turn's new blocks and re-apply its edits to each block as it is now in the database, in
        `session`, the turn's writing transaction (after it took the agent's lock): an edit another turn or process
        made meanwhile is kept. An edit that no longer fits (its text was replaced, or the block is full) is dropped
        and logged. The blocks this memory read stay as they were: they belong to the turn's reading session."""
        writer = CoreMemory(session, self.agent_id)
        inserted = set()
        for label, b in self.pending.items():
            if writer.ensure(label, b.value, b.title, b.limit).value == b.value:
                inserted.add(label)  # this turn's insert won: the block already holds its edits
        self.pending.clear()
        wanted = ({b.label for b, _ in self.edits} | set(self.titles)) - inserted
        rows: dict[str, Block] = {}
        if wanted:
            query = (select(Block).where(Block.agent_id == self.agent_id, col(Block.label).in_(wanted))
                     .with_for_update().execution_options(populate_existing=True))
            rows = {r.label: r for r in session.exec(query).all()}
        for block, edit in self.edits:
            row = rows.get(block.label)
            if block.label in inserted:
                continue
            value = edit(row.value) if row is not None else None
            if row is None or value is None:
                log.warning("core memory block %s is gone; its edit is dropped", block.label)
            elif value == row.value and value:
                log.warning("core memory edit of %s no longer applies; dropped", block.label)
            elif len(value) > row.limit:
                log.warning("core memory edit of %s no longer fits in %d characters; dropped", block.label,
                            row.limit)
            else:
                row.value = value
        for label, title in self.titles.items():
            if label in rows:
                rows[label].title = title
        session.add_all(rows.values())
        self.edits.clear()
        self.titles.clear()

    def render(self, speaker: Speaker | None) -> str:
        """The blocks shown in the prompt: persona, named blocks, and the speaking person's block."""
        parts = []
        for block in self.all():
            if block.label.startswith(PERSON_PREFIX):
                if speaker is None or block.label != speaker.label:
                    continue
            parts.append(_tag(block, speaker))
        return "\n".join(parts)

    def render_person(self, speaker: Speaker | None) -> str:
        """The speaking person's block alone ("" when there is none)."""
        block = self.get(speaker.label) if speaker is not None else None
        return _tag(block, speaker) if block is not None else ""


def _person_text(speaker: Speaker, initial: str) -> str:
    return f"Name: {speaker.name}\n{initial}".strip()


def _tag(block: Block, speaker: Speaker | None) -> str:
    if block.label.startswith(PERSON_PREFIX):
        who = f" id={quoteattr(speaker.id)}" if speaker is not None else ""
        tag, end = f"<human name={quoteattr(block.title)}{who}", "</human>"
    else:
        tag, end = f"<{block.label}", f"</{block.label}>"
    return f'{tag} characters="{len(block.value)}/{block.limit}">\n{escape(block.value)}\n{end}'
