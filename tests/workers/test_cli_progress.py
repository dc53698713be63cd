"""Progress of long commands: the evals' shared bars, and `run --chunks` counting frames once."""

from __future__ import annotations

import io
import time

from rich.console import Console

from workers.chunks import ChunkProgress, plan_chunks
from workers.commands.progress import sequence_progress


def test_sequence_progress_shows_frames_fps_and_a_line_per_sequence() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    with sequence_progress(2, console) as bars:
        for done in range(1, 6):
            bars.frame("bear", done, 5)
        time.sleep(0.3)  # the bars refresh 10 times a second
        shown = screen.getvalue()
        bars.finished("bear", "J&F 0.812")
        bars.frame("[/x]", 1, 3)
        bars.finished("[/x]", "J&F 0.500")
    text = screen.getvalue()
    assert "bear" in shown and "5/5" in shown and "fps" in shown and "0/2" in shown
    assert "bear: J&F 0.812" in text and "[/x]: J&F 0.500" in text


def test_chunk_progress_counts_each_published_frame_once() -> None:
    plan = plan_chunks(0, 287, 4, overlap=8)
    seen: list[tuple[int, int | None]] = []
    progress = ChunkProgress(plan, 1, lambda done, total: seen.append((done, total)))
    for c in plan:  # every chunk processes its overlap, then its own frames
        progress.for_chunk(c.index)(c.end - c.warm_start, None)
    assert progress.total == 287 and seen[-1] == (287, 287)
    strided = ChunkProgress(plan_chunks(0, 287, 3, overlap=8, stride=2), 2, None)
    assert strided.total == len(range(0, 287, 2))
