"""Which frames of a file or image folder are yielded: range, stride or target fps, resume point."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from pipeline.sources.config import SourceConfig
from pipeline.sources.positions import resolve_range


class Sampler:
    """Decides the frame indices to yield, from the frames' PTS and the config.

    The sampling grid is anchored at the start of the range, not at the resume point, so resuming
    from any index yields exactly the frames a full run would have yielded from there.

    Args:
        pts: Presentation times (seconds) of every frame of the source, non-decreasing.
        config: Range and sampling settings.
    """

    def __init__(self, pts: Sequence[float], config: SourceConfig) -> None:
        self.pts = pts
        self.lo, self.hi = resolve_range(config.start, config.end, pts)
        self.stride = config.stride
        self.target_fps = config.target_fps

    def _slot(self, index: int) -> int:
        assert self.target_fps is not None
        return math.floor((self.pts[index] - self.pts[self.lo]) * self.target_fps + 1e-6)

    def keeps(self, index: int) -> bool:
        """Whether frame ``index`` is yielded."""
        if not self.lo <= index < self.hi:
            return False
        if self.target_fps is not None:
            return index == self.lo or self._slot(index) != self._slot(index - 1)
        return (index - self.lo) % self.stride == 0

    def indices(self, start: int = 0) -> Iterator[int]:
        """Indices to yield, in order, from ``start`` on."""
        first = max(start, self.lo)
        if self.target_fps is None:
            offset = (first - self.lo) % self.stride
            if offset:
                first += self.stride - offset
            yield from range(first, self.hi, self.stride)
            return
        for index in range(first, self.hi):
            if self.keeps(index):
                yield index
