"""Progress of long commands on stderr (stdout stays for JSON): one helper every eval shares."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from workers.commands.console import err


class SequenceProgress:
    """Two bars, sequences done and frames of the current sequence (with its fps), and a line
    per finished sequence printed above them."""

    def __init__(self, progress: Progress, sequences: int) -> None:
        self._progress = progress
        self._sequences = progress.add_task("sequences", total=sequences, fps=None)
        self._frames: TaskID | None = None
        self._current: str | None = None
        self._t0 = 0.0

    def frame(self, sequence: str, done: int, total: int | None) -> None:
        """``done`` frames of ``sequence`` (of ``total``, None: unknown) are processed."""
        if sequence != self._current:
            if self._frames is not None:
                self._progress.remove_task(self._frames)
            self._frames = self._progress.add_task(sequence, total=total, fps=0.0)
            self._current, self._t0 = sequence, time.perf_counter()
        fps = done / max(time.perf_counter() - self._t0, 1e-9)
        assert self._frames is not None
        self._progress.update(self._frames, completed=done, total=total, fps=fps)

    def finished(self, sequence: str, summary: str) -> None:
        """Print one line for a finished sequence and advance the sequence bar."""
        self._progress.console.print(Text(f"{sequence}: {summary}"), soft_wrap=True)
        self._progress.advance(self._sequences)


class _Fps(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task) -> Text:  # type: ignore[override]
        fps = task.fields.get("fps")
        return Text("" if fps is None else f"{fps:.1f} fps")


@contextlib.contextmanager
def sequence_progress(sequences: int, console: Console = err) -> Iterator[SequenceProgress]:
    """Progress bars (on stderr) for an evaluation over ``sequences`` sequences."""
    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        _Fps(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        yield SequenceProgress(progress, sequences)
