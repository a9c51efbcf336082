"""The SQL tables: sources and their documents, agents, memory blocks, messages and source bindings."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, Index, Text, UniqueConstraint, func, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Source(SQLModel, table=True):
    """A named data source; its passages live in their own Milvus collection."""

    __table_args__ = (UniqueConstraint("scope", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(default="local", index=True, max_length=200)  # "local", "slack:T123", "discord:G1"
    name: str = Field(max_length=200)
    embedding_model: str = Field(max_length=200)
    embedding_dim: int
    chunk_tokens: int
    revision: int = 0  # bumped on every change to its passages; search caches key on it
    ready: bool = False  # False until its first load finishes; hidden and cleaned up until then
    deleting: bool = False  # set first by a delete; the collection goes next, the rows last (see Catalog)
    # Who sees it (agent/archival/audience.py): "workspace", or "channel" (only its origin place).
    audience: str = Field(default="workspace", max_length=20)
    origin_channel: str = Field(default="", max_length=200)  # the place it was uploaded in; "" for CLI loads
    uploader: str = Field(default="", max_length=200)  # the platform user id; "" for CLI loads
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


# "Report" and "report" are one source: unique by lower(name) within a scope (SQLite's lower() folds only A-Z).
SOURCE_NAME_INDEX = Index("uq_source_scope_lower_name", Source.__table__.c.scope,  # type: ignore[attr-defined]
                          func.lower(Source.__table__.c.name), unique=True)  # type: ignore[attr-defined]


class Document(SQLModel, table=True):
    """One loaded file of a source. A PDF counts `page_count` documents, like the original."""

    # One ready version of a file per source, whatever two loads of it do at once.
    __table_args__ = (Index("uq_document_ready_file", "source_id", "file_name", unique=True,
                            sqlite_where=text("status = 'ready'"), postgresql_where=text("status = 'ready'")),)
    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True)
    file_name: str = Field(max_length=1000)
    content_hash: str = Field(max_length=64, index=True)
    size_bytes: int
    page_count: int
    passage_count: int
    status: str = Field(default="loading", max_length=20)  # loading | ready | replaced
    owner: str = Field(default="", max_length=200)  # host:pid of the process loading it
    file_ref: str = Field(default="", max_length=200, index=True)  # the platform's id of the upload ("" for CLI)
    created_at: datetime = Field(default_factory=utcnow)


class Agent(SQLModel, table=True):
    """A persistent agent: one per channel (or per console name) within a scope."""

    __table_args__ = (UniqueConstraint("scope", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(default="local", index=True, max_length=200)
    name: str = Field(max_length=200)
    persona_preset: str = Field(default="", max_length=200)
    human_preset: str = Field(default="", max_length=200)
    embedding_model: str = Field(default="", max_length=200)
    embedding_dim: int = 0
    summary: str = Field(default="", sa_column=Column(Text))  # recursive summary of evicted messages
    context_from: int = 0  # id of the first message still in the context window
    pressure_alerted: bool = False  # a memory-pressure alert was given since the last summary
    archival_revision: int = 0  # bumped on every archival insert; search caches key on it
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Block(SQLModel, table=True):
    """A core memory block of an agent: persona, one per person (label person:<id>), or any named block."""

    __table_args__ = (UniqueConstraint("agent_id", "label"),)
    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    label: str = Field(max_length=200)
    title: str = Field(default="", max_length=200)  # a person's display name
    value: str = Field(default="", sa_column=Column(Text))
    limit: int = 2000


class Message(SQLModel, table=True):
    """Recall memory: every message an agent saw or produced, never deleted by context trimming.

    role is user | assistant | tool. kind says what a user-role input is: message, heartbeat, alert, event.
    """

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    role: str = Field(max_length=20)
    kind: str = Field(default="message", max_length=20)
    author: str = Field(default="", max_length=200)
    author_id: str = Field(default="", max_length=200)
    thread: str = Field(default="", max_length=200)
    content: str = Field(default="", sa_column=Column(Text))
    tool_calls: str = Field(default="", sa_column=Column(Text))  # JSON list for assistant steps
    tool_call_id: str = Field(default="", max_length=200)
    name: str = Field(default="", max_length=200)  # the tool a tool-role message answers
    created_at: datetime = Field(default_factory=utcnow, index=True)


class SourceBinding(SQLModel, table=True):
    """An agent's reference to a source: attaching never copies passages."""

    agent_id: int = Field(foreign_key="agent.id", primary_key=True)
    source_id: int = Field(foreign_key="source.id", primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)


class SourceLoad(SQLModel, table=True):
    """A load in progress (from before it reads its first file): a new source with no document yet is not
    taken for abandoned while one is registered. No foreign key: a delete must never wait for a crashed load."""

    __tablename__ = "source_load"
    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(index=True)
    owner: str = Field(max_length=200)  # host:pid
    started_at: datetime = Field(default_factory=utcnow)
