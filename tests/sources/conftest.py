"""Generated inputs for the source tests: clips whose frame i is a flat grey of `level(i)`."""

from __future__ import annotations

import fractions
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.types import Event


def level(index: int) -> int:
    """The grey level of generated frame ``index`` (distinct for the first 42 frames)."""
    return (index * 6) % 252


def frame_image(index: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.full((*size, 3), level(index), np.uint8)


def make_clip(
    path: Path,
    n: int = 30,
    size: tuple[int, int] = (48, 64),
    pts_ms: Sequence[int] | None = None,
    gop: int = 10,
    rotation: int = 0,
    container_options: dict[str, str] | None = None,
    fmt: str | None = None,
) -> Path:
    """Write an H.264 clip of ``n`` flat-grey frames; frame i is ``level(i)`` and shown at
    ``pts_ms[i]`` milliseconds (default: every 40 ms, i.e. 25 fps)."""
    stamps = list(pts_ms) if pts_ms is not None else [40 * i for i in range(n)]
    time_base = fractions.Fraction(1, 1000)
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
        stream.time_base = time_base
        stream.options = {"preset": "ultrafast", "g": str(gop), "bf": "0"}
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(frame_image(i, size), format="rgb24")
            frame.pts, frame.time_base = stamps[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def assert_content(frames: Sequence, tolerance: float = 3.0) -> None:
    """Every frame's pixels are the grey level of its index (index and picture agree)."""
    for f in frames:
        assert abs(float(f.image.mean()) - level(f.index)) < tolerance, f.index


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated clips: cfr (30 frames at 25 fps), vfr (40/80 ms intervals), rotated (90°)."""
    root = tmp_path_factory.mktemp("source_clips")
    vfr_pts = [0]
    for i in range(1, 30):
        vfr_pts.append(vfr_pts[-1] + (40 if i % 2 else 80))
    return {
        "cfr": make_clip(root / "cfr.mp4"),
        "vfr": make_clip(root / "vfr.mp4", pts_ms=vfr_pts),
        "rotated": make_clip(root / "rotated.mp4", n=5, size=(48, 64), rotation=90),
        "faststart": make_clip(
            root / "faststart.mp4", n=40, container_options={"movflags": "+faststart"}
        ),
    }


class EventLog:
    """Collects source events (a real callback, as the lead's Redis publisher would be)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture()
def event_log() -> Callable[[Event], None]:
    return EventLog()
