"""Moving passages of the old server layout (one collection per source and per agent) into the shared one.

Earlier versions wrote `membot_src_<id>` and `membot_agent_<id>` collections on a Milvus server too. Each is
copied batch by batch into its model's shared collection under its new tenant name, checked by count, and only
then dropped: an interrupted run leaves the old collection whole, and running it again copies it again (the
copy deletes the ids first, so nothing is duplicated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from agent.archival.milvus_store import FETCH_BATCH, PassageStore
from agent.archival.server_layout import legacy_pattern
from agent.db.models import Agent, Source
from agent.errors import UserError

LEGACY_FIELDS = ["id", "vector", "text", "source_id", "agent_id", "document_id", "file_name", "page",
                 "chunk_index", "inserted_at"]


@dataclass(frozen=True)
class Moved:
    old: str
    new: str  # the tenant in the shared collection; empty when the old collection was left alone
    rows: int
    note: str = ""


def legacy_collections(store: PassageStore, legacy_prefix: str) -> list[tuple[str, str, int]]:
    """(name, kind, id) of every old-layout collection: kind is `src` or `agent`."""
    assert store.shared is not None
    pattern = legacy_pattern(legacy_prefix)
    found = []
    for name in store.shared.legacy(legacy_prefix):
        m = pattern.match(name)
        assert m is not None
        found.append((name, m.group(1), int(m.group(2))))
    return found


def migrate(store: PassageStore, engine: Engine, legacy_prefix: str = "membot",
            report: Callable[[Moved], None] = lambda m: None) -> list[Moved]:
    if store.shared is None:
        raise UserError("Nothing to migrate: Milvus Lite keeps one collection per source, as before. The shared "
                        "layout is for a Milvus server (MEMBOT_MILVUS_URI=http://HOST:19530).")
    moved = []
    for name, kind, ident in legacy_collections(store, legacy_prefix):
        result = _move_one(store, engine, name, kind, ident)
        report(result)
        moved.append(result)
    return moved


def _move_one(store: PassageStore, engine: Engine, name: str, kind: str, ident: int) -> Moved:
    with Session(engine) as s:
        owner = s.get(Source, ident) if kind == "src" else s.get(Agent, ident)
    if owner is None or not owner.embedding_model:
        return Moved(name, "", 0, f"no {'source' if kind == 'src' else 'agent'} {ident} with passages in this "
                                  "database: left as it is")
    logical = store.source_collection(ident) if kind == "src" else store.agent_collection(ident)
    store.ensure(logical, owner.embedding_dim, owner.embedding_model)
    assert store.shared is not None
    client = store.client
    client.load_collection(name)
    before = int(client.query(name, filter="", output_fields=["count(*)"],
                              consistency_level="Strong")[0]["count(*)"])
    iterator = client.query_iterator(name, batch_size=FETCH_BATCH, filter="", output_fields=LEGACY_FIELDS,
                                     consistency_level="Strong")
    try:
        while batch := iterator.next():
            store.shared.insert(logical, [dict(r) for r in batch])
    finally:
        iterator.close()
    after = store.shared.count(logical)
    if after < before:
        return Moved(name, logical, after, f"only {after} of {before} rows arrived: the old collection is kept")
    client.drop_collection(name)
    return Moved(name, logical, before)
