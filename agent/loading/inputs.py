"""The files a load reads: paths from the command line or bytes from a chat upload."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import UserError


@dataclass(frozen=True)
class InputFile:
    """A file to load: `name` identifies it within the source (re-loading the same name replaces it)."""

    name: str
    read: Callable[[], bytes]
    size: int | None = None

    @classmethod
    def from_path(cls, path: Path, name: str | None = None) -> InputFile:
        try:
            size = path.stat().st_size
        except OSError:
            size = None
        return cls(name or path.name, path.read_bytes, size)

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> InputFile:
        return cls(name, lambda: data, len(data))


def collect_files(input_files: Sequence[str], input_dir: str | None, recursive: bool,
                  extensions: Sequence[str]) -> tuple[list[InputFile], int]:
    """The files to load and how many files in the directory were passed over for their extension."""
    if bool(input_files) == bool(input_dir):
        raise UserError("Give either --input-files or --input-dir (one of them).")
    if input_files:
        files = []
        for raw in input_files:
            path = Path(raw).expanduser()
            if not path.is_file():
                raise UserError(f"{raw}: no such file.")
            files.append(InputFile.from_path(path))
        names = [f.name for f in files]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UserError(f"Two input files share the name {twice[0]}; load them from a directory instead.")
        return files, 0
    root = Path(str(input_dir)).expanduser()
    if not root.is_dir():
        raise UserError(f"{input_dir}: no such directory.")
    wanted = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    paths = sorted(p for p in (root.rglob("*") if recursive else root.iterdir()) if p.is_file())
    chosen = [p for p in paths if p.suffix.lower() in wanted]
    return [InputFile.from_path(p, p.relative_to(root).as_posix()) for p in chosen], len(paths) - len(chosen)
