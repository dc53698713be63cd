"""Video sources: files (PyAV; decord on request), image folders, live streams (PyAV).

`open_source` picks the source by its URI: an existing directory is an image folder, a URL
(``rtsp://``, ``http(s)://``, ``udp://`` ...) or ``/dev/video*`` is live, anything else is a file.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from pipeline.sources.base import SourceError, SourceInfo, VideoSource
from pipeline.sources.config import SourceConfig
from pipeline.sources.events import EventCallback, EventSink

__all__ = [
    "SourceConfig",
    "SourceError",
    "SourceInfo",
    "VideoSource",
    "is_live",
    "open_source",
    "probe",
]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_live(uri: str) -> bool:
    """Whether ``uri`` is a live source: a URL with a scheme, or a ``/dev/video*`` device."""
    return bool(_URL.match(uri)) or uri.startswith("/dev/video")


def open_source(
    uri: str,
    source_id: str,
    config: SourceConfig | None = None,
    on_event: EventCallback | None = None,
) -> VideoSource:
    """Open a file, an image folder or a live stream.

    Args:
        uri: A video file, a folder of images, a stream URL or a ``/dev/video*`` device.
        source_id: Name put on every frame and event.
        config: How to read it (defaults: `SourceConfig()`).
        on_event: Called with every source event (``source.connected``, ``source.disconnected``,
            ``source.reconnecting``, ``source.eof``, ``source.error``).

    Raises:
        SourceError: The source cannot be opened; the message says why and what to do.
    """
    config = config or SourceConfig()
    events = EventSink(source_id, on_event)
    if is_live(uri):
        from pipeline.sources.live import LiveSource

        return LiveSource(uri, source_id, config, events)
    if Path(uri).is_dir():
        from pipeline.sources.images import ImageFolderSource

        return ImageFolderSource(uri, source_id, config, events)
    from pipeline.sources.files import open_file

    return open_file(uri, source_id, config, events)


def probe(uri: str, config: SourceConfig | None = None) -> SourceInfo:
    """What the source layer sees of ``uri`` (frames as `open_source` would yield them).

    For a live source this connects once (within ``open_timeout_s``) and disconnects.

    Raises:
        SourceError: The source cannot be opened.
    """
    config = config or SourceConfig()
    if is_live(uri):
        config = config.model_copy(update={"reconnect": False})
    source = open_source(uri, "probe", config)
    try:
        if is_live(uri):
            source.info.fps = _measured_fps(source)
        return source.info
    finally:
        source.close()


def _measured_fps(source: VideoSource, frames: int = 14, seconds: float = 2.0) -> float | None:
    """A live source's frame rate as frames arrive (a stream's declared rate can be a guess:
    FFmpeg says 25 for any MJPEG camera); None when fewer than 5 frames come within ``seconds``."""
    stamps: list[float] = []
    deadline = time.monotonic() + seconds
    try:
        for _ in source.frames():
            stamps.append(time.monotonic())
            if len(stamps) >= frames or stamps[-1] > deadline:
                break
    except SourceError:
        pass
    stamps = stamps[2:]  # the first frames come in a burst, buffered while connecting
    if len(stamps) < 3 or stamps[-1] <= stamps[0]:
        return None
    return round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 2)
