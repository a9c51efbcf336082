"""The files a load reads: paths from the command line or bytes from a chat upload."""

from __future__ import annotations

import errno
import os
import stat
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
    ref: str = ""  # the platform's id of an uploaded file (a Slack file id): its deletion there removes it here

    @classmethod
    def from_path(cls, path: Path, name: str | None = None) -> InputFile:
        """A file on disk. A path that cannot be read (a directory, a FIFO, a broken link) still becomes an
        InputFile whose read fails, so the loader reports it by name and loads the others."""
        name = name or path.name
        try:
            info = path.stat()
        except OSError as exc:
            why = exc.strerror or str(exc)
            if path.is_symlink():
                why = f"a broken symbolic link to {os.readlink(path)}"
            return cls(name, _fails(OSError(exc.errno, why)))
        if stat.S_ISDIR(info.st_mode):
            return cls(name, _fails(IsADirectoryError(errno.EISDIR, "it is a directory (load one with --input-dir)")))
        if not stat.S_ISREG(info.st_mode):  # reading a FIFO or a device could block or never end
            return cls(name, _fails(OSError(errno.EINVAL, f"not a regular file ({_kind(info.st_mode)})")))
        return cls(name, path.read_bytes, info.st_size)

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> InputFile:
        return cls(name, lambda: data, len(data))


def _fails(error: OSError) -> Callable[[], bytes]:
    def read() -> bytes:
        raise error

    return read


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def collect_files(input_files: Sequence[str], input_dir: str | None, recursive: bool,
                  extensions: Sequence[str]) -> tuple[list[InputFile], int]:
    """The files to load and how many files in the directory were passed over for their extension."""
    if bool(input_files) == bool(input_dir):
        raise UserError("Give either --input-files or --input-dir (one of them).")
    if input_files:
        files = []
        for raw in input_files:
            path = Path(raw).expanduser()
            if not path.exists() and not path.is_symlink():
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
