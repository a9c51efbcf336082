"""Passages and their vectors in Milvus: one logical collection per source (and per agent's own archival memory).

A local path opens Milvus Lite (one process per path), where each logical collection is a real one: loading,
deleting or searching a source touches only its own rows. An `http://host:port` URI opens a Milvus server, where
the logical collections are partition-key slices of one shared collection per embedding model
(agent/archival/server_layout.py) and search runs inside the server.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.archival.server_layout import SharedCollections, detect_features
from agent.errors import StoreUnavailable
from agent.redact import mask_uri, scrub, uri_secret

log = logging.getLogger(__name__)


class _NoMvccWarning(logging.Filter):
    """pymilvus warns on every read of Milvus Lite, which has no MVCC timestamps; it is noise on a terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to get mvccTs" not in record.getMessage()


logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_NoMvccWarning())
TEXT_MAX = 65_535
FETCH_BATCH = 4_000
OUTPUT_FIELDS = ["id", "vector", "text", "document_id", "file_name", "page", "chunk_index", "inserted_at"]
# A search must see every row a finished load wrote: the default (Bounded) may hide the newest rows, and the
# search cache would then keep the incomplete copy until the next change.
CONSISTENCY = "Strong"

# Milvus Lite runs inside the process that opens a path and locks it; every PassageStore of this process on
# one path shares that embedded server, which is released when the last of them closes.
_LITE_GUARD = threading.Lock()
# pymilvus pings every 10 s, even between calls; the embedded server's gRPC defaults call that abuse during a long
# embedding and print "GOAWAY ... too_many_pings" on the terminal. A server in our own process needs no pings.
LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 3_600_000, "grpc.keepalive_permit_without_calls": False}
_LITE_USERS: dict[str, int] = {}


@dataclass(frozen=True)
class PassageRow:
    """One passage as stored: vector, text and its provenance."""

    id: int
    vector: Sequence[float]
    text: str
    document_id: int
    file_name: str
    page: int  # 1-based page for PDFs, 0 when a file has no pages
    chunk_index: int
    inserted_at: int  # epoch milliseconds
    source_id: int = 0
    agent_id: int = 0


@dataclass
class CollectionData:
    """All rows of one collection, column-wise, as read back for the search index."""

    ids: np.ndarray
    vectors: np.ndarray
    texts: list[str]
    document_ids: np.ndarray
    file_names: list[str]
    pages: np.ndarray
    chunk_indexes: np.ndarray
    inserted_at: np.ndarray


def passage_id(document_id: int, chunk_index: int) -> int:
    """Deterministic ids, so a retried insert of the same document overwrites instead of duplicating."""
    return (document_id << 20) | chunk_index


class PassageStore:
    """Narrow interface over pymilvus: create, insert, delete by document, read all, drop."""

    def __init__(self, uri: str, prefix: str = "membot", connect: bool = True) -> None:
        """connect=False defers connecting (and importing pymilvus, ~0.5 s) to the first call that needs Milvus,
        so a search answered from index snapshots never opens it."""
        self.uri = uri
        self.prefix = prefix
        self._loaded: set[str] = set()
        self._lite_path = os.path.abspath(uri) if "://" not in uri else None
        self._closed = False
        self._connection: Any = None
        self._connect_lock = threading.Lock()
        self.shared: SharedCollections | None = None  # the server layout; None on Milvus Lite
        if self._lite_path is None:  # a server: its layout and features are read at start
            from pymilvus.exceptions import MilvusException

            client = self._connect()
            try:
                self.shared = SharedCollections(client, prefix, detect_features(client))
            except MilvusException as exc:
                raise StoreUnavailable(_open_failure(uri, exc)) from exc
            return
        if not uri.endswith(".db"):
            raise StoreUnavailable(
                f"MEMBOT_MILVUS_URI={uri} is neither a Milvus Lite file ending in .db nor an http://HOST:PORT "
                "server address."
            )
        if connect:
            self._connect()

    @property
    def _client(self) -> Any:
        return self._connection if self._connection is not None else self._connect()

    def _connect(self) -> Any:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        with self._connect_lock:
            if self._connection is not None:
                return self._connection
            if self._closed:
                raise StoreUnavailable("The passage store was closed.")
            uri = self.uri
            if self._lite_path is None:
                try:
                    self._connection = MilvusClient(uri=uri)
                except MilvusException as exc:
                    raise StoreUnavailable(_open_failure(uri, exc)) from exc
                return self._connection
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            with _LITE_GUARD:
                if not _LITE_USERS.get(self._lite_path) and _lite_locked(self._lite_path):
                    raise StoreUnavailable(_lite_busy(uri))
                try:
                    self._connection = MilvusClient(uri=uri, grpc_options=LITE_GRPC_OPTIONS)
                except MilvusException as exc:
                    if not _LITE_USERS.get(self._lite_path):
                        _release_lite(self._lite_path)
                    raise StoreUnavailable(_open_failure(uri, exc)) from exc
                _LITE_USERS[self._lite_path] = _LITE_USERS.get(self._lite_path, 0) + 1
            return self._connection

    @property
    def client(self) -> Any:
        """The pymilvus client (for maintenance such as agent/archival/migrate.py)."""
        return self._client

    # names -------------------------------------------------------------------------------------------
    def source_collection(self, source_id: int) -> str:
        return f"{self.prefix}_src_{source_id}"

    def agent_collection(self, agent_id: int) -> str:
        return f"{self.prefix}_agent_{agent_id}"

    # writes ------------------------------------------------------------------------------------------
    def ensure(self, collection: str, dim: int, model: str = "") -> None:
        """Make `collection` ready for writes of `model`'s `dim`-dimension vectors (on a server, the model picks
        the shared collection)."""
        from pymilvus import DataType

        if self.shared is not None:
            self.shared.ensure(collection, dim, model)
            return
        client = self._client
        if client.has_collection(collection):
            self._ensure_loaded(collection)
            return
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
        schema.add_field("source_id", DataType.INT64)
        schema.add_field("agent_id", DataType.INT64)
        schema.add_field("document_id", DataType.INT64)
        schema.add_field("file_name", DataType.VARCHAR, max_length=1024)
        schema.add_field("page", DataType.INT64)
        schema.add_field("chunk_index", DataType.INT64)
        schema.add_field("inserted_at", DataType.INT64)
        index = client.prepare_index_params()
        # FLAT: exact; HNSW under a selective filter lost most hits in our measurements.
        index.add_index("vector", index_type="FLAT", metric_type="COSINE")
        client.create_collection(collection, schema=schema, consistency_level=CONSISTENCY)
        # sync=False: pymilvus would otherwise poll the (empty, instantly built) index for 0.5 s per collection.
        client.create_index(collection, index, sync=False)
        # Another process may have dropped an earlier collection of this name that we had loaded.
        self._loaded.discard(collection)
        self._ensure_loaded(collection)

    def insert(self, collection: str, rows: Iterable[PassageRow]) -> int:
        data = [_row_dict(r) for r in rows]
        if self.shared is not None:
            # A server writes its log before it answers: no flush per load (each one would seal a tiny segment).
            self.shared.insert(collection, data)
            return len(data)
        for start in range(0, len(data), 1000):
            self._client.upsert(collection, data[start : start + 1000])
        # Unflushed rows are searched row by row and may be lost on a crash: flush every load.
        self._client.flush(collection)
        return len(data)

    def delete_documents(self, collection: str, document_ids: Sequence[int]) -> None:
        if self.shared is not None:
            if document_ids:
                self.shared.delete(collection, document_ids)
            return
        if not document_ids or not self._client.has_collection(collection):
            return
        self._ensure_loaded(collection)
        ids = ",".join(str(int(d)) for d in document_ids)
        self._client.delete(collection, filter=f"document_id in [{ids}]")
        self._client.flush(collection)

    def drop(self, collection: str) -> None:
        if self.shared is not None:
            self.shared.delete(collection)
            return
        if self._client.has_collection(collection):
            self._client.drop_collection(collection)
        self._loaded.discard(collection)

    # reads -------------------------------------------------------------------------------------------
    def exists(self, collection: str) -> bool:
        if self.shared is not None:
            return self.shared.count(collection) > 0
        return bool(self._client.has_collection(collection))

    def document_ids(self, collection: str) -> set[int]:
        """The distinct document ids that have rows (used to find orphans after a crash)."""
        return {int(d) for d in self.read_all(collection, fields=["id", "document_id"]).document_ids}

    def read_all(self, collection: str, fields: list[str] | None = None) -> CollectionData:
        """Every row of a collection, column-wise. Empty arrays for a missing collection."""
        fields = fields or OUTPUT_FIELDS
        rows: list[dict[str, Any]] = []
        if self.shared is not None:
            rows = self.shared.rows(collection, fields, FETCH_BATCH)
        elif self._client.has_collection(collection):
            self._ensure_loaded(collection)
            iterator = self._client.query_iterator(
                collection, batch_size=FETCH_BATCH, filter="", output_fields=fields, consistency_level=CONSISTENCY
            )
            try:
                while batch := iterator.next():
                    rows.extend(batch)
            finally:
                iterator.close()
        return _columns(rows)

    def count(self, collection: str) -> int:
        if self.shared is not None:
            return self.shared.count(collection)
        if not self._client.has_collection(collection):
            return 0
        self._ensure_loaded(collection)
        result = self._client.query(collection, filter="", output_fields=["count(*)"],
                                    consistency_level=CONSISTENCY)
        return int(result[0]["count(*)"])

    def close(self) -> None:
        """Close the client; for Milvus Lite, the last store of this process on a path also releases the path,
        so another process can open it."""
        with self._connect_lock:
            if self._closed:
                return
            self._closed = True
        if self._connection is None:  # never connected: nothing to close or release
            return
        try:
            self._connection.close()
        except Exception:  # pragma: no cover - closing must not mask the real error
            log.debug("closing Milvus client failed", exc_info=True)
        if self._lite_path is not None:
            with _LITE_GUARD:
                left = _LITE_USERS.get(self._lite_path, 1) - 1
                if left > 0:
                    _LITE_USERS[self._lite_path] = left
                    return
                _LITE_USERS.pop(self._lite_path, None)
                _release_lite(self._lite_path)

    def _ensure_loaded(self, collection: str) -> None:
        # A collection reopened in a new process must be loaded before it can be queried.
        from pymilvus.exceptions import MilvusException

        if collection not in self._loaded:
            try:
                self._client.load_collection(collection)
            except MilvusException:
                if not self._drop_lite_indexes(collection):
                    raise
                self._client.load_collection(collection)
            self._loaded.add(collection)

    def _drop_lite_indexes(self, collection: str) -> bool:
        """A process killed while Milvus Lite wrote an index file leaves it cut off, and every later load fails.
        Index files are derived from the stored rows: remove them and Milvus Lite builds them again."""
        if "://" in self.uri:
            return False
        broken = list((Path(self.uri) / "collections" / collection).glob("partitions/*/indexes/*.idx"))
        for path in broken:
            log.warning("removing Milvus Lite index file %s so it is rebuilt from the stored rows", path)
            path.unlink(missing_ok=True)
        return bool(broken)


def _row_dict(row: PassageRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "vector": list(map(float, row.vector)),
        "text": row.text.encode("utf-8")[: TEXT_MAX - 4].decode("utf-8", "ignore"),
        "source_id": row.source_id,
        "agent_id": row.agent_id,
        "document_id": row.document_id,
        "file_name": row.file_name[:1024],
        "page": row.page,
        "chunk_index": row.chunk_index,
        "inserted_at": row.inserted_at,
    }


def _columns(rows: list[dict[str, Any]]) -> CollectionData:
    rows.sort(key=lambda r: r["id"])
    vectors = [r["vector"] for r in rows if "vector" in r]
    return CollectionData(
        ids=np.array([r["id"] for r in rows], dtype=np.int64),
        vectors=np.asarray(vectors, dtype=np.float32) if vectors else np.zeros((0, 0), np.float32),
        texts=[r.get("text", "") for r in rows],
        document_ids=np.array([r.get("document_id", 0) for r in rows], dtype=np.int64),
        file_names=[r.get("file_name", "") for r in rows],
        pages=np.array([r.get("page", 0) for r in rows], dtype=np.int64),
        chunk_indexes=np.array([r.get("chunk_index", 0) for r in rows], dtype=np.int64),
        inserted_at=np.array([r.get("inserted_at", 0) for r in rows], dtype=np.int64),
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def _lite_locked(path: str) -> bool:
    """Whether another process holds the Milvus Lite lock on `path` (a directory holding a LOCK file)."""
    lock = os.path.join(path, "LOCK")
    if not os.path.exists(lock):
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: opening reports it instead
        return False
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _release_lite(path: str) -> None:
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # pragma: no cover - an older milvus-lite ran as a subprocess of its own
        return
    server_manager_instance.release_server(path)


def _lite_busy(uri: str) -> str:
    return (
        f"Milvus Lite at {uri} is in use by another process. Milvus Lite allows one process per path: stop the "
        "other membot (or Milvus Lite) process, or run a Milvus server and set MEMBOT_MILVUS_URI=http://HOST:19530 "
        "so several processes can share it."
    )


def _open_failure(uri: str, error: Exception) -> str:
    exc = scrub(str(error), [uri_secret(uri)])  # a server URI may hold a password, and the driver may repeat it
    uri = mask_uri(uri)
    if "://" not in uri:
        return (
            f"Cannot open Milvus Lite at {uri}: {exc}. Milvus Lite allows one process per path; if another "
            "membot (or Milvus Lite) process is using it, stop that process, or run a Milvus server and set "
            "MEMBOT_MILVUS_URI=http://HOST:19530 so several processes can share it."
        )
    return f"Cannot reach the Milvus server at {uri}: {exc}. Is it running? Check MEMBOT_MILVUS_URI."
