"""The records the identity modules share: a track's book-keeping (`Identity`), what propagation
says about a live track in one frame (`TrackedObject`) and what one update decided
(`IdentityUpdate`)."""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.types import TrackState

Box = tuple[float, float, float, float]


@dataclass
class TrackedObject:
    """What propagation says about one live track in this frame (the tracker's one record per
    object: `Tracker.step` fills, corrects and publishes it).

    Attributes:
        track_id: The track.
        mask: (H, W) bool propagated mask, or None.
        box: (x0, y0, x1, y1) of the propagated mask, or None when nothing is left of it.
        score: Propagation confidence in [0, 1] (e.g. propagated mass relative to the reference).
        prototype: (C,) feature prototype of the propagated mask, or None.
        soft: (region slices, upsampled probability over that region), or None (not visible, or
            not from propagation).
        weights: (h, w) grid: propagated probability where the object wins (None: not from
            propagation); what the presence verifier judges.
        lean: For a box-prompted track, the share of its framing's growth that goes before its
            mask (above, left), as its appearance memory sees the object beyond the mask (None:
            the prompt's share).
    """

    track_id: int
    mask: np.ndarray | None
    box: Box | None
    score: float
    prototype: np.ndarray | None
    soft: tuple[tuple[slice, slice], np.ndarray] | None = None
    weights: np.ndarray | None = None
    lean: float | None = None


@dataclass
class IdentityUpdate:
    """What one `IdentityManager.update` decided; dict keys are observation indices.

    Attributes:
        matched: Observation index -> existing tentative or active track it was matched to.
        born: Observation index -> new track it started (confirmed for prompts, else tentative).
        recovered: Observation index -> lost track it brought back (now active).
        lost: Tracks that became lost in this frame.
        ended: Tracks that ended in this frame (timed out while lost, or dropped while tentative);
            their memory can be freed.
    """

    matched: dict[int, int] = field(default_factory=dict)
    born: dict[int, int] = field(default_factory=dict)
    recovered: dict[int, int] = field(default_factory=dict)
    lost: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)


@dataclass
class Identity:
    """Book-keeping of one track (tentative, active or lost)."""

    track_id: int
    state: TrackState
    label: str | None
    box: Box
    last_seen: int  # frame of the last box update
    observed: int  # frame of the last observation
    velocity: tuple[float, float] = (0.0, 0.0)  # centre pixels per frame
    born: int = 0  # frame of birth
    hits: int = 1
    misses: int = 0  # consecutive unmatched frames while tentative
    unmatched: int = 0  # consecutive frames with observations and no match while active
    detected: int | None = None  # last frame a detection (not prompt, re-detection) matched it
    detection_misses: int = 0  # consecutive frames with detections since then that missed it
    lost_since: int | None = None
    prototype: np.ndarray | None = None
    gallery: deque = field(default_factory=deque)
    gallery_frame: int = -(10**9)
    height: float = 0.0  # slowly averaged box height (``height_momentum``), 0 until first seen

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable fields (arrays as lists, the state as its value)."""
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, d: dict[str, Any], gallery_size: int) -> Identity:
        """The inverse of `to_json`; fields missing from older checkpoints take their default."""
        values = {f.name: _DECODE.get(f.name, _plain)(d[f.name]) for f in _FIELDS if f.name in d}
        values["gallery"] = deque(values.get("gallery", ()), maxlen=gallery_size)
        return cls(**values)


def _encode(v: Any) -> Any:
    if isinstance(v, TrackState):
        return v.value
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple | deque):
        return [_encode(x) for x in v]
    return v


def _plain(v: Any) -> Any:
    return v


def _array(v: Any) -> np.ndarray | None:
    return None if v is None else np.asarray(v, dtype=np.float32)


def _floats(v: Any) -> tuple[float, ...]:
    return tuple(float(x) for x in v)


_FIELDS = dataclasses.fields(Identity)
_DECODE = {
    "state": TrackState,
    "box": _floats,
    "velocity": _floats,
    "prototype": _array,
    "gallery": lambda v: [_array(g) for g in v],
    "height": float,
    **{
        name: int
        for name in ("track_id", "last_seen", "observed", "born", "hits", "misses", "unmatched")
        + ("detection_misses", "gallery_frame")
    },
}
