"""Persona and human presets: text files shipped with membot, plus a person's own under MEMBOT_HOME."""

from __future__ import annotations

import re
from pathlib import Path

from agent.errors import NotFound, UserError

BUILTIN = Path(__file__).resolve().parent
KINDS = ("personas", "humans")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Presets:
    def __init__(self, home: Path) -> None:
        self.home = home

    def _dirs(self, kind: str) -> list[Path]:
        if kind not in KINDS:
            raise UserError(f"Unknown preset kind {kind!r}: use personas or humans.")
        return [self.home / kind, BUILTIN / kind]

    def names(self, kind: str) -> list[str]:
        found = {p.stem for d in self._dirs(kind) if d.is_dir() for p in d.glob("*.txt")}
        return sorted(found)

    def get(self, kind: str, name: str) -> str:
        for directory in self._dirs(kind):
            path = directory / f"{name}.txt"
            if path.is_file():
                return path.read_text(encoding="utf-8").strip()
        raise NotFound(f"No {kind[:-1]} preset named {name!r}. Presets: {', '.join(self.names(kind))}.")

    def add(self, kind: str, name: str, text: str) -> Path:
        if not _NAME.match(name):
            raise UserError("A preset name is 1-64 letters, digits, '.', '_' or '-'.")
        if not text.strip():
            raise UserError("A preset needs some text.")
        if len(text) > 2000:
            raise UserError(f"A preset is at most 2000 characters (core memory's limit); this one has {len(text)}.")
        directory = self._dirs(kind)[0]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.txt"
        path.write_text(text.strip() + "\n", encoding="utf-8")
        return path
