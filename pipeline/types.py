"""The data that flows through the pipeline.

`Frame` leaves a source, `FeatureMap` leaves a backbone, `FrameResult` leaves the tracker and is
what gets published, with the `Event`s of sources, tracks and jobs (see `pipeline.wire` for their
Redis encoding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        source_id: Which source produced it.
        index: Frame index in the source; monotonically increasing, survives reconnects.
        pts: Presentation time in seconds (from the container, never derived from a declared fps
            when the container has timestamps).
        wall_time: Unix time (seconds) when the frame was decoded or received.
        image: HxWx3 uint8 RGB.
    """

    source_id: str
    index: int
    pts: float
    wall_time: float
    image: np.ndarray

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class FeatureMap:
    """Patch features of one frame.

    Attributes:
        grid: (h, w, C) float32, L2-normalised along C.
        stride: Pixels of the model input per grid cell.
        global_vec: (D,) float32, L2-normalised image-level vector.
        input_size: (H_in, W_in) of the resized image the model saw (= grid size * stride).
        image_size: (H, W) of the original frame.
        backbone: Name of the backbone that made it (e.g. "dinov2-small").
    """

    grid: np.ndarray
    stride: int
    global_vec: np.ndarray
    input_size: tuple[int, int]
    image_size: tuple[int, int]
    backbone: str

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.grid.shape[0]), int(self.grid.shape[1])


class TrackState(str, Enum):
    """Life cycle of a track."""

    TENTATIVE = "tentative"  # born from an observation, not yet confirmed
    ACTIVE = "active"  # followed in this frame
    LOST = "lost"  # faded; kept in the gallery for re-identification
    ENDED = "ended"  # lost for longer than the timeout; its id is never reused


@dataclass
class Track:
    """One object in one frame.

    Attributes:
        id: Track id, unique within a source, never reused.
        label: Optional class or user label.
        state: Life-cycle state.
        score: Confidence in [0, 1].
        box: (x0, y0, x1, y1) pixels of the original frame, or None when the object is not visible.
        mask: COCO RLE ``{"size": [h, w], "counts": str}`` or None.
    """

    id: int
    label: str | None
    state: TrackState
    score: float
    box: tuple[float, float, float, float] | None
    mask: dict | None = None

    def mask_array(self) -> np.ndarray | None:
        """The mask decoded to an (h, w) bool array, or None."""
        if self.mask is None:
            return None
        from pipeline.masks import rle_decode

        return rle_decode(self.mask)


@dataclass
class FrameResult:
    """What the pipeline says about one frame; the unit that is published."""

    source_id: str
    frame_index: int
    pts: float
    wall_time: float
    width: int
    height: int
    backbone: str
    tracks: list[Track] = field(default_factory=list)

    def track(self, track_id: int) -> Track | None:
        return next((t for t in self.tracks if t.id == track_id), None)


@dataclass
class Observation:
    """An object seen in one frame by a prompt or a detector, before it is linked to a track.

    Attributes:
        box: (x0, y0, x1, y1) pixels of the original frame.
        mask: (H, W) bool, or None when only a box is known.
        score: Detector or segmenter confidence in [0, 1].
        label: Optional class or user label.
        origin: Where it comes from: ``"prompt"`` (a user prompt: it always starts a new,
            confirmed track), ``"detection"`` (a detector, an external detection or a prompt's
            later re-detection: it joins, recovers or starts a track) or ``"redetection"`` (the
            tracker's own re-detection of a lost track: it may only recover a lost track, never
            start one or count against a followed one).
        for_track: For a re-detection by a lost track's own verifier (the tracker's global
            search), that track: it brings that very track back, wherever it is in the frame.
        prototype: (C,) feature prototype of the observed region, or None (the tracker fills it
            in from the patch features under the mask, or under the box).
        framing: The box a prompt drew around the object (None: the mask's box is the frame):
            a track a prompt starts keeps this framing of its mask in the boxes it publishes.
    """

    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None
    score: float = 1.0
    label: str | None = None
    origin: Literal["prompt", "detection", "redetection"] = "detection"
    for_track: int | None = None
    prototype: np.ndarray | None = None
    framing: tuple[float, float, float, float] | None = None


@dataclass
class Event:
    """Something that happened to a source, a track or a job (published on the events stream).

    kind: e.g. "track.started", "track.lost", "track.recovered", "track.ended",
    "source.connected", "source.disconnected", "source.reconnecting", "source.eof", "source.error",
    "job.started", "job.finished", "job.failed".
    """

    kind: str
    source_id: str
    wall_time: float
    frame_index: int | None = None
    track_id: int | None = None
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
