"""Snapshots of searched collections on local disk, so a new process (`membot search`) answers without Milvus.

A snapshot is keyed by the collection's revision and generation as SQL records them: every load, replace or
delete changes the revision, so a snapshot is either exactly what Milvus held at that revision or is never read.
It is a cache, not a store: any file may be deleted at any time, and a damaged one is ignored and rewritten.
Texts are kept as one UTF-8 buffer plus offsets (no pickle, nothing executable in the file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zipfile
from collections.abc import Hashable
from pathlib import Path

import numpy as np

from agent.archival.milvus_store import CollectionData

log = logging.getLogger(__name__)
ARRAYS = ("ids", "vectors", "document_ids", "pages", "chunk_indexes", "inserted_at")


class Snapshots:
    def __init__(self, directory: Path, namespace: str) -> None:
        self.directory = directory
        self._namespace = namespace  # the Milvus URI and prefix: two deployments never share a snapshot

    def load(self, collection: str, revision: Hashable) -> CollectionData | None:
        path = self._path(collection, revision)
        try:
            with np.load(path, allow_pickle=False) as z:
                return CollectionData(**{k: z[k] for k in ARRAYS}, texts=_strings(z, "texts"),
                                      file_names=_strings(z, "file_names"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            log.warning("ignoring a damaged search snapshot %s", path, exc_info=True)
            return None

    def save(self, collection: str, revision: Hashable, data: CollectionData) -> None:
        path = self._path(collection, revision)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            arrays = {k: getattr(data, k) for k in ARRAYS} | _packed("texts", data.texts) | _packed(
                "file_names", data.file_names)
            with open(tmp, "wb") as out:
                np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy's stub mistakes the names for options
            os.replace(tmp, path)  # readers see the old file or the whole new one, never a part
        except OSError:
            log.warning("could not write a search snapshot to %s", self.directory, exc_info=True)
            tmp.unlink(missing_ok=True)
            return
        self.forget(collection, keep=path)

    def forget(self, collection: str, keep: Path | None = None) -> None:
        """Remove the collection's snapshots (all but `keep`): older revisions are never read again."""
        for old in self.directory.glob(f"{collection}.*.npz"):
            if old != keep:
                old.unlink(missing_ok=True)

    def _path(self, collection: str, revision: Hashable) -> Path:
        key = hashlib.sha256(f"{self._namespace}\n{revision!r}".encode()).hexdigest()[:24]
        return self.directory / f"{collection}.{key}.npz"


def _packed(name: str, strings: list[str]) -> dict[str, np.ndarray]:
    encoded = [s.encode("utf-8") for s in strings]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64) if encoded else np.zeros(0, np.int64)
    return {f"{name}_utf8": np.frombuffer(b"".join(encoded), dtype=np.uint8), f"{name}_ends": ends}


def _strings(z: np.lib.npyio.NpzFile, name: str) -> list[str]:
    buffer = z[f"{name}_utf8"].tobytes()
    ends = z[f"{name}_ends"].tolist()
    starts = [0, *ends[:-1]]
    return [buffer[a:b].decode("utf-8") for a, b in zip(starts, ends)]
