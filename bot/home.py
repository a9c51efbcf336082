"""MEMBOT_HOME is private: the directory 0700 and what membot writes in it 0600 (the database holds every
channel's messages, config.toml may hold keys)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_home(home: Path) -> Path:
    """Create `home` owner-only, or tighten an existing one (and the files at its top level, which older
    versions left 0644). A home that is not ours (a shared directory someone pointed it at) is left as is."""
    home.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if home.stat().st_uid != os.getuid():
        return home
    os.chmod(home, PRIVATE_DIR)
    for entry in home.iterdir():
        try:
            info = entry.lstat()
        except OSError:
            continue
        if info.st_uid != os.getuid() or stat.S_ISLNK(info.st_mode):
            continue
        if stat.S_ISREG(info.st_mode):
            os.chmod(entry, PRIVATE_FILE)
        elif stat.S_ISDIR(info.st_mode):  # Milvus Lite's data directory, presets
            os.chmod(entry, PRIVATE_DIR)
    return home


def private_umask() -> None:
    """Files the process creates from now on (SQLite's WAL, Milvus Lite's segments, logs) are owner-only."""
    os.umask(0o077)
