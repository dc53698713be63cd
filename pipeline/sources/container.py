"""What a video file holds, read with PyAV: a packet scan, then the first frame decoded.

Opening a file costs one pass over its packets (no decoding) and the decoding of its first frame
(which carries the display rotation); the PyAV reader carries on from that frame, so nothing is
decoded twice.
"""

from __future__ import annotations

import logging
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.sources.base import SourceError

log = logging.getLogger("dinotrack.sources")

# Codec options for the stream probe at open: take the stream parameters from the headers instead
# of decoding a frame (the first frame is decoded once, by `scan_container`).
_PROBE_OPTIONS = {"skip_frame": "all"}


@dataclass
class ContainerScan:
    """The video stream of a file, from its packets.

    Attributes:
        path: The file.
        codec: Decoder name (e.g. "h264").
        width: Decoded frame width (before rotation).
        height: Decoded frame height.
        rotation: Display rotation in degrees counter-clockwise (0, 90, 180 or 270).
        pts: (N,) float64 presentation time in seconds of every frame, in presentation order.
        keyframes: Sorted frame indices of keyframe packets (in decode order).
        fps: The stream's frame rate as the container guesses it.
        vfr: Whether frame intervals vary (beyond timestamp rounding).
        truncated: Whether reading the packets stopped on an error before the end.
    """

    path: str
    codec: str
    width: int
    height: int
    rotation: int
    pts: np.ndarray
    keyframes: np.ndarray
    fps: float
    vfr: bool
    truncated: bool

    @property
    def frames(self) -> int:
        return int(len(self.pts))

    @property
    def duration(self) -> float:
        if self.frames == 0:
            return 0.0
        last = 1.0 / self.fps if self.fps > 0 else 0.0
        return float(self.pts[-1] - self.pts[0] + last)


@dataclass
class Decoding:
    """The PyAV decode `scan_container` started: a reader carries on from its first frame.

    Attributes:
        container: The open PyAV input container (closed by `close`).
        stream: Its first video stream; decoder threads are set and the decoder is open.
        first: The first decoded frame (frame 0).
        rest: The frames decoded after ``first``, in presentation order.
    """

    container: Any
    stream: Any
    first: Any
    rest: Iterator[Any]

    def close(self) -> None:
        self.container.close()


def check_file(uri: str) -> Path:
    """The path of ``uri`` if it is a readable, non-empty file; else a `SourceError`."""
    path = Path(uri)
    if not path.exists():
        raise SourceError(f"cannot open {uri!r}: file not found — check the path")
    if not path.is_file():
        raise SourceError(f"cannot open {uri!r}: not a regular file — give a video file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot open {uri!r}: permission denied — check the file's permissions")
    if path.stat().st_size == 0:
        raise SourceError(f"{uri!r} is empty (0 bytes) — re-copy or re-record the file")
    return path


def is_vfr(pts: np.ndarray) -> bool:
    """Whether frame intervals vary beyond timestamp rounding (1.5 ms or 20% of the median)."""
    if len(pts) < 3:
        return False
    diffs = np.diff(pts)
    median = float(np.median(diffs))
    return bool(np.any(np.abs(diffs - median) > max(0.0015, 0.2 * median)))


def scan_container(uri: str, decode_threads: int = 0) -> tuple[ContainerScan, Decoding]:
    """Read the packet index of ``uri``'s first video stream with PyAV, then decode frame 0.

    Args:
        uri: The file.
        decode_threads: Decoder threads (0 = let the decoder choose); frame and slice threading.

    Returns:
        The scan, and the decode it started (the caller closes it).

    Raises:
        SourceError: Missing, empty or unreadable file, no video stream, unsupported codec,
            no frames, or a first frame that does not decode.
    """
    import av

    check_file(uri)
    try:
        container = av.open(uri, options=_PROBE_OPTIONS)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"{uri!r} is not a video (PyAV could not read it: {exc}) — "
            "check that the file is a complete video"
        ) from exc
    try:
        return _scan(container, uri, decode_threads)
    except BaseException:
        container.close()
        raise


def _scan(container: Any, uri: str, decode_threads: int) -> tuple[ContainerScan, Decoding]:
    import av

    if not container.streams.video:
        raise SourceError(f"{uri!r} has no video stream — give a file with video")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise SourceError(
            f"{uri!r} uses a codec this build cannot decode — re-encode it, "
            "e.g. to H.264 (ffmpeg -i in -c:v libx264 out.mp4)"
        )
    time_base = float(stream.time_base) if stream.time_base else 0.0
    stamps = array("d")  # 8 bytes a frame: hours of video stay a few MiB
    keyframes: list[int] = []
    truncated = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.is_keyframe:
                keyframes.append(len(stamps))
            stamps.append(np.nan if stamp is None else stamp * time_base)
    except av.FFmpegError as exc:
        truncated = True
        log.warning("%r: packet scan stopped after %d frames: %s", uri, len(stamps), exc)
    rate = stream.guessed_rate or stream.average_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    pts = np.frombuffer(stamps, dtype=np.float64).copy()
    if len(pts) and np.isnan(pts).any():
        # No timestamps in the container: derive them from the frame rate.
        pts = np.arange(len(pts), dtype=np.float64) / (fps or 25.0)
    pts.sort()
    if len(pts) == 0:
        raise SourceError(f"{uri!r} has no frames — the video stream is empty")
    if fps <= 0 and len(pts) > 1:
        fps = (len(pts) - 1) / max(float(pts[-1] - pts[0]), 1e-9)
    decoding = _decode_first(container, stream, uri, decode_threads)
    scan = ContainerScan(
        path=uri,
        codec=stream.codec_context.name,
        width=int(decoding.first.width),
        height=int(decoding.first.height),
        rotation=int(round(decoding.first.rotation / 90.0)) * 90 % 360,
        pts=pts,
        keyframes=np.asarray(keyframes or [0], dtype=np.int64),
        fps=fps,
        vfr=is_vfr(pts),
        truncated=truncated,
    )
    return scan, decoding


def _decode_first(container: Any, stream: Any, uri: str, decode_threads: int) -> Decoding:
    """Rewind and decode the first frame (it checks the stream decodes and carries the rotation)."""
    import av

    stream.thread_type = "AUTO"
    if decode_threads:
        stream.codec_context.thread_count = decode_threads
    try:
        container.seek(0, stream=stream)
        frames = container.decode(stream)
        for first in frames:
            return Decoding(container=container, stream=stream, first=first, rest=frames)
    except av.FFmpegError as exc:
        raise SourceError(
            f"{uri!r} could not be decoded ({exc}) — the file is damaged or uses an unsupported "
            "codec; re-encode it, e.g. to H.264"
        ) from exc
    raise SourceError(f"{uri!r} has no frames — its video stream could not be decoded")
