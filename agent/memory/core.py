"""Core memory: named blocks with character limits, always in the prompt, edited by the agent's tools."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from sqlmodel import Session, select

from agent.db.models import Block
from agent.db.upsert import insert_ignore
from agent.errors import ToolFailure

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

    def all(self) -> list[Block]:
        rows = self.session.exec(select(Block).where(Block.agent_id == self.agent_id).order_by(Block.id)).all()
        return list(rows)

    def get(self, label: str) -> Block | None:
        return self.session.exec(select(Block).where(Block.agent_id == self.agent_id, Block.label == label)).first()

    def ensure(self, label: str, value: str = "", title: str = "", limit: int = 2000) -> Block:
        """The block called `label`, inserted with `value` unless it exists: insert-or-get, so two turns (or
        processes) meeting a new person at once both get the one block."""
        block = self.get(label)
        if block is None:
            self.session.flush()
            fresh = Block(agent_id=self.agent_id, label=label, value=value[:limit], title=title, limit=limit)
            insert_ignore(self.session.connection(), Block.__table__,  # type: ignore[attr-defined]
                          fresh.model_dump(exclude={"id"}))
            block = self.get(label)
            assert block is not None
        if title and block.title != title:
            block.title = title
            self.session.add(block)
        return block

    def person(self, speaker: Speaker, initial: str = "") -> Block:
        return self.ensure(speaker.label, f"Name: {speaker.name}\n{initial}".strip(), title=speaker.name)

    def resolve(self, label: str, speaker: Speaker | None) -> Block:
        """`human` is whoever is speaking; a person's display name also finds their block."""
        if label == "human" and speaker is not None:
            return self.person(speaker)
        block = self.get(label)
        if block is None:
            block = next((b for b in self.all() if b.title and b.title.lower() == label.lower()), None)
        if block is None:
            names = ["human"] + [b.label for b in self.all() if not b.label.startswith(PERSON_PREFIX)]
            raise ToolFailure(f"Edit failed: no memory block named {label!r}. Blocks: {', '.join(names)}.")
        return block

    def append(self, label: str, content: str, speaker: Speaker | None) -> str:
        block = self.resolve(label, speaker)
        new = f"{block.value}\n{content}" if block.value else content
        return self._set(block, new)

    def replace(self, label: str, old: str, new: str, speaker: Speaker | None) -> str:
        block = self.resolve(label, speaker)
        if not old:
            raise ToolFailure("Edit failed: old_content is empty; use core_memory_append to add text.")
        if old not in block.value:
            raise ToolFailure(f"Edit failed: {old!r} is not in the {label} block. Copy the exact text to replace.")
        return self._set(block, block.value.replace(old, new, 1))

    def _set(self, block: Block, value: str) -> str:
        if len(value) > block.limit:
            raise ToolFailure(
                f"Edit failed: Exceeds {block.limit} character limit (requested {len(value)}). Consider "
                "summarizing the block first with core_memory_replace, or saving details to archival memory."
            )
        block.value = value
        self.session.add(block)
        return f"The {block.label} block now has {len(value)}/{block.limit} characters."

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


def _tag(block: Block, speaker: Speaker | None) -> str:
    if block.label.startswith(PERSON_PREFIX):
        who = f" id={quoteattr(speaker.id)}" if speaker is not None else ""
        tag, end = f"<human name={quoteattr(block.title)}{who}", "</human>"
    else:
        tag, end = f"<{block.label}", f"</{block.label}>"
    return f'{tag} characters="{len(block.value)}/{block.limit}">\n{escape(block.value)}\n{end}'
