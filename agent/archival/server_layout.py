"""Passages on a Milvus server: one collection per embedding model, dimension and deployment, the source or agent
as its partition key, an HNSW index on the vector.

Milvus advises a partition key over thousands of collections (one per source and one per agent would soon pass
the few hundred a server handles well). Each logical collection name that PassageStore hands out
(`<prefix>_src_7`, `<prefix>_agent_3`) becomes the `tenant` value of its rows in the shared collection.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.archival.identifiers import MAX_LENGTH, MAX_PER_PASSAGE, identifiers

TEXT_MAX = 65_535
TENANT_MAX = 255
HNSW_M = 16  # Milvus's recommended range is 8-64; 16 keeps recall >= 0.95 at ef 128 on 384-dim vectors
HNSW_EF_CONSTRUCTION = 200
PARTITIONS = 16  # partition-key buckets: each is searched on its own, so fewer is faster when many sources are seen
# Reads that must see their own write (counts after a load, the migration) ask for Strong; searches use Bounded
# (the collection's default): Strong costs a round of time-tick waiting on every call.
STRONG = "Strong"
BOUNDED = "Bounded"
ROW_FIELDS = ["id", "vector", "text", "tenant", "document_id", "file_name", "page", "chunk_index", "inserted_at"]


@dataclass(frozen=True)
class ServerFeatures:
    """What the server can do, found out once at start."""

    version: str
    bm25: bool  # full-text search (BM25 function fields and hybrid_search): Milvus 2.5 and later

    @property
    def mode(self) -> str:
        keyword = "BM25 full-text search" if self.bm25 else "identifier filter (no BM25 before Milvus 2.5)"
        return f"Milvus server {self.version}: HNSW vector search + {keyword}, inside Milvus"


def detect_features(client: Any) -> ServerFeatures:
    version = str(client.get_server_version())
    return ServerFeatures(version, _supports_bm25(version))


def _supports_bm25(version: str) -> bool:
    if version.startswith("milvus_lite"):  # Milvus Lite 2.5+ numbers itself on its own line
        numbers = re.findall(r"\d+", version.split("-", 1)[-1])
        return bool(numbers) and (int(numbers[0]), int(numbers[1] if len(numbers) > 1 else 0)) >= (2, 5)
    numbers = re.findall(r"\d+", version)
    if len(numbers) < 2:
        return False
    return (int(numbers[0]), int(numbers[1])) >= (2, 5)


def legacy_pattern(prefix: str = "membot") -> re.Pattern[str]:
    """Collection names of the old server layout: one per source and one per agent."""
    return re.compile(rf"^{re.escape(prefix)}_(src|agent)_(\d+)$")


def physical_name(prefix: str, model: str, dim: int) -> str:
    """The shared collection of one embedding model and dimension: Milvus names allow [A-Za-z0-9_] only, so the
    model's name is folded and a short hash of it keeps two models that fold alike apart."""
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:40] or "model"
    digest = hashlib.sha1(model.encode()).hexdigest()[:6]
    return f"{prefix}_passages_{slug}_{digest}_{dim}"


def quote(value: str) -> str:
    """A string literal for a Milvus filter expression."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SharedCollections:
    """Logical per-source / per-agent collections as partition-key slices of shared server collections."""

    def __init__(self, client: Any, prefix: str, features: ServerFeatures) -> None:
        self.client = client
        self.prefix = prefix
        self.features = features
        self._homes: dict[str, str] = {}  # logical name -> its physical collection, as this process created it
        self._ready: set[str] = set()  # physical collections known to exist and be loaded
        self._lock = threading.Lock()

    # physical collections ----------------------------------------------------------------------------
    def physical(self, model: str, dim: int) -> str:
        return physical_name(self.prefix, model, dim)

    def legacy(self, prefix: str = "membot") -> list[str]:
        """Old-layout collections on this server (`membot sources migrate` moves them)."""
        pattern = legacy_pattern(prefix)
        return sorted(n for n in self.client.list_collections() if pattern.match(n))

    def all_physical(self) -> list[str]:
        start = f"{self.prefix}_passages_"
        return [n for n in self.client.list_collections() if n.startswith(start)]

    def open(self, name: str, dim: int) -> None:
        """Create the shared collection (if no process did yet) and load it."""
        with self._lock:
            if name in self._ready:
                return
        if not self.client.has_collection(name):
            try:
                self._create(name, dim)
            except Exception:
                if not self.client.has_collection(name):  # another process created it at the same moment
                    raise
        self.client.load_collection(name)
        with self._lock:
            self._ready.add(name)

    def _create(self, name: str, dim: int) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("tenant", DataType.VARCHAR, max_length=TENANT_MAX, is_partition_key=True)
        if self.features.bm25:
            schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX, enable_analyzer=True)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        else:
            schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
        schema.add_field("idents", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_PER_PASSAGE,
                         max_length=MAX_LENGTH)
        for field in ("source_id", "agent_id", "document_id", "page", "chunk_index", "inserted_at"):
            schema.add_field(field, DataType.INT64)
        schema.add_field("file_name", DataType.VARCHAR, max_length=1024)
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type="HNSW", metric_type="COSINE",
                        params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
        if self.features.bm25:
            from pymilvus import Function, FunctionType

            schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                         input_field_names=["text"], output_field_names=["sparse"]))
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self.client.create_collection(name, schema=schema, index_params=index, consistency_level=BOUNDED,
                                      num_partitions=PARTITIONS)

    # logical collections -----------------------------------------------------------------------------
    def ensure(self, logical: str, dim: int, model: str) -> None:
        name = self.physical(model, dim)
        self.open(name, dim)
        with self._lock:
            self._homes[logical] = name

    def home(self, logical: str) -> str:
        with self._lock:
            name = self._homes.get(logical)
        if name is None:
            raise RuntimeError(f"PassageStore.ensure({logical!r}, dim, model) must run before writing to it")
        return name

    def insert(self, logical: str, rows: Sequence[dict[str, Any]]) -> None:
        name = self.home(logical)
        for row in rows:
            row["tenant"] = logical
            row["idents"] = identifiers(row["text"])
        for start in range(0, len(rows), 1000):
            batch = list(rows[start : start + 1000])
            # Not upsert: Milvus 2.3 upserts ignore the partition key (the rows land where a filtered read never
            # looks). Deleting the ids first keeps a retried write from duplicating them.
            self.client.delete(name, filter=f"id in [{','.join(str(int(r['id'])) for r in batch)}]")
            self.client.insert(name, batch)

    def delete(self, logical: str, document_ids: Sequence[int] | None = None) -> None:
        """Delete the rows of `document_ids` (None: every row) of a logical collection, whichever model's
        collection holds them."""
        expr = f"tenant == {quote(logical)}"
        if document_ids is not None:
            expr += f" and document_id in [{','.join(str(int(d)) for d in document_ids)}]"
        for name in self.all_physical():
            self._loaded(name)
            self.client.delete(name, filter=expr)

    def count(self, logical: str) -> int:
        total = 0
        for name in self.all_physical():
            self._loaded(name)
            rows = self.client.query(name, filter=f"tenant == {quote(logical)}", output_fields=["count(*)"],
                                     consistency_level=STRONG)
            total += int(rows[0]["count(*)"])
        return total

    def rows(self, logical: str, fields: list[str], batch: int) -> list[dict[str, Any]]:
        """Every row of a logical collection (for maintenance and tests, never on the search path)."""
        out: list[dict[str, Any]] = []
        for name in self.all_physical():
            self._loaded(name)
            iterator = self.client.query_iterator(name, batch_size=batch, filter=f"tenant == {quote(logical)}",
                                                  output_fields=fields, consistency_level=STRONG)
            try:
                while chunk := iterator.next():
                    out.extend(chunk)
            finally:
                iterator.close()
        return out

    def _loaded(self, name: str) -> None:
        with self._lock:
            if name in self._ready:
                return
        self.client.load_collection(name)
        with self._lock:
            self._ready.add(name)
