"""A progress bar for loads on the terminal (stderr), fed by the loader's progress callbacks."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from agent.loading.loader import FileOutcome, LoadProgress


class RichLoadProgress(LoadProgress):
    def __init__(self, files: int, console: Console | None = None) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console or Console(stderr=True), transient=True,
        )
        self._files = self._bar.add_task("files", total=files)
        self._passages: TaskID | None = None

    def __enter__(self) -> RichLoadProgress:
        self._bar.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.stop()

    def file_started(self, name: str, passages: int) -> None:
        if self._passages is not None:
            self._bar.remove_task(self._passages)
        self._passages = self._bar.add_task(f"embedding {name}", total=passages)

    def advanced(self, passages: int) -> None:
        if self._passages is not None:
            self._bar.advance(self._passages, passages)

    def file_finished(self, outcome: FileOutcome) -> None:
        self._bar.advance(self._files, 1)
