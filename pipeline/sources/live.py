"""Live streams (RTSP, HTTP MJPEG / MPEG-TS / HLS, UDP, /dev/video*) read with PyAV.

A reader thread decodes into a bounded buffer: when processing is slower than the camera the oldest
frame is dropped (counted in ``dropped``), so the consumer always gets the freshest frames and
memory stays bounded. Disconnects are retried with exponential backoff and jitter; frame indices
and PTS keep increasing across reconnects. A live frame's PTS is its arrival time in seconds since
the source was opened (monotonic clock), so an outage shows as a gap of its real length.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.sources.base import SourceError, SourceInfo
from pipeline.sources.config import SourceConfig
from pipeline.sources.events import EventSink
from pipeline.sources.sizing import output_size
from pipeline.types import Frame


@dataclass
class _Pending:
    """A decoded frame waiting in the buffer (converted to RGB only when consumed)."""

    frame: Any  # av.VideoFrame
    index: int
    pts: float
    wall_time: float


def open_options(uri: str, config: SourceConfig) -> tuple[str | None, dict[str, str]]:
    """The PyAV format and options for a live ``uri``."""
    options: dict[str, str] = {}
    fmt = None
    if uri.startswith("/dev/video"):
        fmt = "v4l2"
    else:
        options["rw_timeout"] = str(int(config.read_timeout_s * 1e6))
    if uri.startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = config.rtsp_transport
    return fmt, options


def backoff_delay(attempt: int, config: SourceConfig, rng: random.Random) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based): doubling, capped, with jitter.

    The delay is drawn uniformly from [50%, 100%] of ``min(backoff_max_s,
    backoff_initial_s * 2 ** (attempt - 1))``.
    """
    base = min(config.backoff_max_s, config.backoff_initial_s * 2 ** (attempt - 1))
    return base * rng.uniform(0.5, 1.0)


class LiveSource:
    """A live stream; connecting happens in the constructor (retrying as configured).

    Args:
        uri: Stream URL or ``/dev/video*`` device.
        source_id: Name put on every frame and event.
        config: Timeouts, reconnect policy, buffer size, output size.
        events: Where source events go.

    Raises:
        SourceError: The stream could not be opened (after the configured retries).
    """

    reader = "pyav"

    def __init__(self, uri: str, source_id: str, config: SourceConfig, events: EventSink) -> None:
        self.uri = uri
        self.source_id = source_id
        self.config = config
        self.events = events
        self.dropped = 0
        self.info = SourceInfo(
            uri=uri,
            kind="live",
            frames=None,
            fps=None,
            duration=None,
            width=0,
            height=0,
            codec=None,
            reader=self.reader,
        )
        self._buffer: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._finished = False
        self._error: SourceError | None = None
        self._size: tuple[int, int] | None = None
        self._next_index = 0
        self._last_pts = -1.0
        self._session_start = time.monotonic()
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name=f"live-{source_id}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._size is None:
            self._thread.join()
            assert self._error is not None
            raise self._error

    # reader thread

    def _open(self) -> Any:
        import av

        fmt, options = open_options(self.uri, self.config)
        return av.open(
            self.uri,
            format=fmt,
            options=options,
            timeout=(self.config.open_timeout_s, self.config.read_timeout_s),
        )

    def _failure(self, exc: BaseException, connected: bool) -> str:
        """Why opening or reading failed, in words."""
        import av

        if isinstance(exc, av.ExitError):
            if connected:
                return f"no data for {self.config.read_timeout_s:g} s"
            return f"no answer within {self.config.open_timeout_s:g} s"
        return str(exc) or type(exc).__name__

    def _run(self) -> None:
        import av

        failures = 0  # failed attempts in a row
        ever = False
        reason = ""
        try:
            while not self._stop.is_set():
                try:
                    container = self._open()
                except (av.FFmpegError, OSError) as exc:
                    reason = self._failure(exc, connected=False)
                else:
                    received = self._next_index
                    try:
                        clean_end = self._read(container, reconnected=ever)
                        ever = True
                        reason = "the stream ended"
                    except (av.FFmpegError, OSError, SourceError) as exc:
                        clean_end = False
                        ever = ever or self._size is not None
                        reason = self._failure(exc, connected=True)
                    finally:
                        container.close()
                    if self._next_index > received:
                        failures = 0  # frames came: the next failure starts a new series
                    if self._stop.is_set():
                        return
                    self.events.emit(
                        "source.disconnected", reason, frame_index=self._next_index - 1
                    )
                    if clean_end and not self.config.reconnect:
                        self.events.emit(
                            "source.eof", f"{self.uri!r} ended", frame_index=self._next_index - 1
                        )
                        return
                retries = self.config.max_retries
                if not self.config.reconnect or (retries is not None and failures >= retries):
                    self._error = self.events.error(
                        self._final_message(reason, ever, failures), self._next_index - 1
                    )
                    return
                failures += 1
                delay = backoff_delay(failures, self.config, self._rng)
                self.events.emit(
                    "source.reconnecting",
                    f"attempt {failures} in {delay:.2f} s ({reason})",
                    frame_index=self._next_index - 1,
                    attempt=failures,
                    delay_s=round(delay, 3),
                )
                if self._stop.wait(delay):
                    return
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()
            self._ready.set()

    def _final_message(self, reason: str, ever: bool, failures: int) -> str:
        tries = f" after {failures} retries" if failures else ""
        if not ever:
            if reason.startswith("no answer"):
                return (
                    f"{self.uri!r} did not answer within {self.config.open_timeout_s:g} s{tries} — "
                    "check the address, or raise --open-timeout"
                )
            return f"cannot open {self.uri!r}{tries}: {reason} — check the address and the stream"
        return (
            f"{self.uri!r} disconnected ({reason}) and did not come back{tries} — check the "
            "stream, or raise --max-retries"
        )

    def _read(self, container: Any, reconnected: bool) -> bool:
        """Decode frames into the buffer until the stream ends (True) or stop is asked (False)."""
        if not container.streams.video:
            raise SourceError(f"{self.uri!r} carries no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first = True
        for frame in container.decode(stream):
            if self._stop.is_set():
                return False
            wall = time.time()
            if self._size is None:
                self._connected_first(frame, stream)
            if first:
                self.events.emit(
                    "source.connected",
                    f"{'re' if reconnected else ''}connected to {self.uri!r}",
                    frame_index=self._next_index,
                    width=frame.width,
                    height=frame.height,
                )
                first = False
            # PTS of a live frame: seconds since the source opened, when it arrived (stream
            # timestamps are guessed for MJPEG and restart with the server)
            pts = max(time.monotonic() - self._session_start, self._last_pts + 1e-6)
            self._last_pts = pts
            with self._cond:
                if len(self._buffer) >= self.config.live_buffer:
                    self._buffer.popleft()
                    self.dropped += 1
                self._buffer.append(_Pending(frame, self._next_index, pts, wall))
                self._next_index += 1
                self._cond.notify_all()
        return True

    def _connected_first(self, frame: Any, stream: Any) -> None:
        """Fill ``info`` from the first frame and let the constructor return."""
        self._size = output_size(frame.width, frame.height, self.config, self.uri)
        rate = stream.average_rate or stream.guessed_rate
        self.info.fps = float(rate) if rate else None
        self.info.width, self.info.height = self._size
        self.info.codec = stream.codec_context.name
        self._ready.set()

    # consumer side

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Frames as they arrive (freshest first when behind); ``start`` is ignored for live.

        Raises:
            SourceError: The stream failed for good (after the frames still buffered are yielded).
        """
        while True:
            with self._cond:
                while not self._buffer and not self._finished:
                    self._cond.wait(0.5)
                if not self._buffer:
                    if self._error is not None:
                        raise self._error
                    return
                item = self._buffer.popleft()
            width, height = self._size or (item.frame.width, item.frame.height)
            image = item.frame.to_ndarray(width=width, height=height, format="rgb24")
            yield Frame(
                source_id=self.source_id,
                index=item.index,
                pts=item.pts,
                wall_time=item.wall_time,
                image=np.ascontiguousarray(image),
            )

    def close(self) -> None:
        """Stop the reader thread (waits at most the read timeout for a blocked read)."""
        self._stop.set()
        with self._cond:
            self._buffer.clear()
            self._cond.notify_all()
        self._thread.join(timeout=max(self.config.open_timeout_s, self.config.read_timeout_s) + 1)
