"""Interfaces every source implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from pipeline.types import Frame


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names the source and what to do."""


@dataclass
class SourceInfo:
    """What the source layer sees of a source (``dinotrack probe`` prints this as JSON)."""

    uri: str
    kind: str  # "file", "images", "live"
    frames: int | None  # None for live sources
    fps: float | None
    duration: float | None  # seconds
    width: int
    height: int
    codec: str | None
    vfr: bool = False
    rotation: int = 0
    reader: str = ""  # "decord", "pyav", "images"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VideoSource(Protocol):
    """Yields frames in order with exact index and PTS, in bounded memory."""

    info: SourceInfo

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Frames from index ``start`` (resume: seek, then decode forward)."""
        ...

    def close(self) -> None: ...
