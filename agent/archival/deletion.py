"""Finishing a source's delete, in the order that survives a crash at any point: the source is marked deleting
in SQL first (by the caller), then its collection is dropped, then its rows go. A delete that stopped midway
is finished by whoever finds the mark: the next delete, or the next load's recovery."""

from __future__ import annotations

import logging

from agent.archival.catalog import Catalog
from agent.archival.index import IndexCache
from agent.archival.milvus_store import PassageStore

log = logging.getLogger(__name__)


def finish_delete(catalog: Catalog, store: PassageStore, source_id: int, cache: IndexCache | None = None) -> bool:
    """Drop the collection of a source marked deleting, then remove its rows, unless a load is still registered
    in it: that load finishes the delete when it ends (a crashed one's leftover is finished by the next run).
    True when the rows are gone."""
    collection = store.source_collection(source_id)
    store.drop(collection)
    if cache is not None:
        cache.invalidate(collection)
    removed = catalog.remove_deleted(source_id)
    if not removed:
        log.info("source %s: a load is still running in it; it finishes the delete", source_id)
    return removed


def finish_pending(catalog: Catalog, store: PassageStore, cache: IndexCache | None = None) -> None:
    """Finish every delete that stopped midway."""
    for source in catalog.deleting():
        finish_delete(catalog, store, int(source.id or 0), cache)
