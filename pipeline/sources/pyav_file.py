"""Video files read with PyAV (the default reader): exact indices and PTS from the packet scan."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from pipeline.sources.base import SourceError, SourceInfo
from pipeline.sources.config import SourceConfig
from pipeline.sources.container import ContainerScan, Decoding
from pipeline.sources.events import EventSink
from pipeline.sources.sampling import Sampler
from pipeline.sources.sizing import output_size, rotate
from pipeline.types import Frame

# Re-seek instead of decoding forward when the next wanted frame is this many frames away and a
# keyframe lies in between.
_SEEK_GAP = 8
# Frames whose RGB conversion may be under way while the next ones decode.
_CONVERT_AHEAD = 2


class PyAVFileSource:
    """A video file decoded by PyAV, one frame at a time; indices and PTS from the packet scan.

    Args:
        scan: The file's packet scan (`pipeline.sources.container.scan_container`).
        decoding: The decode the scan started; this source owns and closes its container, and
            reading from frame 0 carries on from its first frame (no re-open, no re-decode).
        source_id: Name put on every frame.
        config: Range, sampling and size settings.
        events: Where ``source.eof`` / ``source.error`` go.
    """

    reader = "pyav"

    def __init__(
        self,
        scan: ContainerScan,
        decoding: Decoding,
        source_id: str,
        config: SourceConfig,
        events: EventSink,
    ) -> None:
        self.scan = scan
        self.source_id = source_id
        self.events = events
        self.dropped = 0
        self.width, self.height = output_size(scan.width, scan.height, config, scan.path)
        self._container = decoding.container
        self._stream = decoding.stream
        self._sampler = Sampler(scan.pts, config)
        self._started: Decoding | None = decoding  # until used: decoding from frame 0 is under way
        self._last: int | None = None  # the last frame handed on
        rotated = scan.rotation in (90, 270)
        self.info = SourceInfo(
            uri=scan.path,
            kind="file",
            frames=scan.frames,
            fps=scan.fps,
            duration=scan.duration,
            width=self.height if rotated else self.width,
            height=self.width if rotated else self.height,
            codec=scan.codec,
            vfr=scan.vfr,
            rotation=scan.rotation,
            reader=self.reader,
        )

    def _decode_from(self, index: int) -> tuple[int, bool, Iterator[Any]]:
        """Seek to the keyframe at or before frame ``index``.

        Returns:
            The keyframe's index, whether a seek happened, and the decoded-frame iterator.
        """
        keys = self.scan.keyframes
        key = int(keys[max(0, np.searchsorted(keys, index, side="right") - 1)])
        started, self._started = self._started, None
        if started is not None and key == 0:
            return 0, False, itertools.chain([started.first], started.rest)
        time_base = float(self._stream.time_base or 0)
        target = int(round(float(self.scan.pts[key]) / time_base)) if key and time_base else 0
        self._container.seek(target, stream=self._stream, backward=True)
        self._stream.codec_context.flush_buffers()  # drop frames decoded before the seek
        return key, True, self._container.decode(self._stream)

    def _index_of(self, frame: Any, guess: int) -> int:
        """The source index of the first frame decoded after a seek (nearest scanned PTS)."""
        if frame.time is None:
            return guess
        return int(np.argmin(np.abs(self.scan.pts - float(frame.time))))

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Frames from source index ``start`` on (resume), sampled and ranged as configured.

        The RGB conversion of a frame (the costliest part at HD sizes) runs in a worker thread
        while the next frames decode, at most `_CONVERT_AHEAD` frames ahead. Frames decoded
        before a file turns out truncated or damaged are all handed on before the error.
        """
        pending: deque[Future[Frame]] = deque()
        with ThreadPoolExecutor(1, thread_name_prefix="dinotrack-rgb") as pool:
            try:
                for frame, index in self._decoded(start):
                    pending.append(pool.submit(self._frame, frame, index))
                    if len(pending) > _CONVERT_AHEAD:
                        yield pending.popleft().result()
            except SourceError:
                while pending:  # what was decoded before the damage is not lost
                    yield pending.popleft().result()
                raise
            while pending:
                yield pending.popleft().result()
        self.events.emit("source.eof", f"end of {self.scan.path!r}", frame_index=self._last)

    def _decoded(self, start: int) -> Iterator[tuple[Any, int]]:
        """Decoded PyAV frames and their source indices from ``start`` on, as sampled."""
        import av

        wanted = self._sampler.indices(start)
        target = next(wanted, None)
        index, last = -1, None
        keys = self.scan.keyframes
        try:
            while target is not None:
                key, seeked, decoded = self._decode_from(target)
                index = -1
                for frame in decoded:
                    if index >= 0:
                        index += 1
                    else:
                        index = self._index_of(frame, key) if seeked else key
                    if index < target:
                        continue
                    yield frame, index
                    last = self._last = index
                    target = next(wanted, None)
                    if target is None:
                        break
                    if target - index > _SEEK_GAP:
                        next_key = np.searchsorted(keys, index, side="right")
                        if next_key < len(keys) and keys[next_key] <= target:
                            break  # re-seek
                else:
                    raise self.events.error(
                        f"{self.scan.path!r} is truncated: it ends after frame {last} of "
                        f"{self.scan.frames} — re-copy the file, or process the frames before "
                        "this point",
                        frame_index=last,
                    )
        except av.FFmpegError as exc:
            raise self.events.error(
                f"{self.scan.path!r} is truncated or damaged: decoding stopped after frame "
                f"{last} ({exc}) — re-copy the file, or process the frames before this point",
                frame_index=last,
            ) from exc

    def _frame(self, frame: Any, index: int) -> Frame:
        if (frame.width, frame.height) == (self.width, self.height):
            image = frame.to_ndarray(format="rgb24")
        else:
            image = frame.to_ndarray(width=self.width, height=self.height, format="rgb24")
        pts = float(self.scan.pts[index]) if index < len(self.scan.pts) else float(frame.time or 0)
        return Frame(
            source_id=self.source_id,
            index=index,
            pts=pts,
            wall_time=time.time(),
            image=np.ascontiguousarray(rotate(image, self.scan.rotation)),
        )

    def close(self) -> None:
        self._container.close()
