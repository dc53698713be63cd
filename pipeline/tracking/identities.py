"""Track identities: association of observations to tracks, loss, re-identification, ids.

The `IdentityManager` is told, every frame, what propagation says about each live track
(`TrackedObject`) and what was newly seen (`pipeline.types.Observation`, from prompts, an external
detector or periodic re-detection). It links observations to tracks with ONE Hungarian assignment
(`scipy.optimize.linear_sum_assignment`) over a score that combines

* overlap: mask IoU with the propagated mask when both masks are known, else box IoU with a
  constant-velocity prediction of the last observed box (observations drive the motion model:
  propagated boxes drift, so the propagated box only stands in once a track has gone unobserved for
  longer than ``max_predict_frames``, as prompt-only tracks do), mixed for a box-only observation
  with the IoU of its box and the propagated mask (``box_mask_weight``): where two people cross,
  their predicted boxes are alike but the label propagation has given each one its own pixels;
* appearance: cosine similarity of the observation's feature prototype with the track's running
  prototype (tentative and active tracks) or with the best entry of its gallery (lost tracks);
* size: ``height_weight`` times |log| of the ratio of the observed box's height to the track's
  slowly averaged box height (``height_momentum``) is taken off (a person in front of another is
  taller: their boxes are nearly concentric and IoU hardly tells them apart);
* a motion gate: the distance between box centres, relative to the track's size, must be under
  ``gate`` (``reid_gate`` for lost tracks), and the box areas may differ by at most ``size_gate``x.

The published box of a track that follows detections comes from that motion model, not from the
propagated mask (which is coarse at box level): the filtered box in a frame where a detection
matched it; its constant-velocity prediction for up to ``coast_frames`` frames whose detections
missed it, while that box stays at least ``coast_min_inside`` inside the image; then no box until a
detection matches it again (`published_box`). Tracks no detection ever matched (prompt-only
tracks) and frames without detections keep the propagated box.

Unmatched observations start tentative tracks, confirmed after ``confirm_frames`` matched frames.
Prompt observations always start confirmed tracks. An active track whose propagated score falls
under ``lost_score`` (or that propagation no longer reports) becomes lost; it keeps a bounded
gallery of prototypes and is recovered when a matching observation comes back, or ended after
``lost_timeout_frames``. A track that follows detections ends as soon as it goes unmatched while its
constant-velocity prediction lies less than ``coast_min_inside`` inside the image (it has walked
out; ``end_outside``), so that it cannot take the detections of someone coming in at the border.
Ids grow from 1 and are never reused; ended tracks are dropped from memory.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic
from scipy.optimize import linear_sum_assignment

from pipeline.masks import box_iou, mask_iou
from pipeline.types import Observation, TrackState
from pipeline.wire import Event

Box = tuple[float, float, float, float]


class IdentityConfig(pydantic.BaseModel):
    """How observations become tracks and how tracks are lost, recovered and ended."""

    model_config = pydantic.ConfigDict(extra="forbid")

    confirm_frames: int = pydantic.Field(2, ge=1)
    """Matched frames (birth included) before a tentative track becomes active."""
    tentative_max_misses: int = pydantic.Field(0, ge=0)
    """Frames a tentative track may go unmatched before it is dropped (its id is not reused); 0:
    confirmation takes consecutive matches, as ByteTrack's (a false detection seldom repeats)."""
    lost_score: float = pydantic.Field(0.3, ge=0.0, le=1.0)
    """An unmatched active track whose propagated score is below this becomes lost."""
    max_unmatched_frames: int | None = pydantic.Field(3, ge=1)
    """Frames with observations in which an active track may find no match before it is lost,
    however well propagation says it is doing; None: only the propagated score counts."""
    lost_timeout_frames: int = pydantic.Field(75, ge=0)
    """Frames a lost track waits for re-identification before it ends."""
    gallery_size: int = pydantic.Field(8, ge=1)
    """Prototypes kept per track for re-identification."""
    gallery_interval: int = pydantic.Field(5, ge=1)
    """Frames between two prototypes added to a track's gallery."""
    prototype_momentum: float = pydantic.Field(0.8, ge=0.0, lt=1.0)
    """Weight of the old running prototype when a matched observation updates it."""
    reid_threshold: float = pydantic.Field(0.85, ge=-1.0, le=1.0)
    """Least cosine similarity of an observation with a lost track's gallery to recover it."""
    iou_weight: float = pydantic.Field(0.8, ge=0.0)
    """Weight of overlap (mask or box IoU) in the match score."""
    appearance_weight: float = pydantic.Field(0.2, ge=0.0)
    """Weight of appearance (prototype cosine similarity) in the match score (low by default:
    measured on MOT15 TUD with MobileNetV2 box-mask prototypes, pedestrians look alike)."""
    appearance_floor: float = pydantic.Field(0.5, ge=-1.0, lt=1.0)
    """Cosine similarity that counts as no resemblance: similarities in [floor, 1] are mapped to
    [0, 1] in the match score (prototypes of any two objects of one class are rarely far apart)."""
    box_mask_weight: float = pydantic.Field(0.5, ge=0.0, le=1.0)
    """Weight, in a box-only observation's overlap with a track, of the IoU between its box and the
    track's propagated mask (the rest: box IoU with the motion prediction)."""
    min_iou: float = pydantic.Field(0.1, ge=0.0, le=1.0)
    """Least overlap of an observation with a tentative or active track's predicted or propagated
    box (or mask) to match it; appearance only chooses among overlapping candidates."""
    box_reid_by_looks: bool = False
    """Whether a box-only observation (a detection without a mask) may recover a lost track on
    looks alone anywhere within ``reid_gate``, as masked observations and re-detections may; False:
    it must overlap the track's predicted box by ``min_iou``, as for a followed track (a box's
    prototype holds background, and people look alike to ImageNet features: measured on MOT15)."""
    reid_discount: float = pydantic.Field(0.5, gt=0.0, le=1.0)
    """Lost tracks' match scores are scaled by this in the one assignment, so that a tentative or
    active track wins an observation that a lost track could also take."""
    tentative_discount: float = pydantic.Field(0.5, gt=0.0, le=1.0)
    """Same for tentative tracks, so that a confirmed track wins against a fresh (maybe false)
    one."""
    gate: float = pydantic.Field(1.0, gt=0.0)
    """Greatest centre distance, relative to sqrt(track box area), for tentative/active tracks."""
    reid_gate: float | None = pydantic.Field(4.0, gt=0.0)
    """Same for lost tracks (loose); None: a lost track may reappear anywhere."""
    size_gate: float = pydantic.Field(3.0, ge=1.0)
    """Greatest ratio between the areas of an observation's box and a track's box."""
    height_weight: float = pydantic.Field(1.0, ge=0.0)
    """Score taken off a pairing per unit of |log(observed box height / track's averaged box
    height)|: where one person stands in front of another their boxes are nearly concentric and
    differ mostly in height, so the taller box belongs to the nearer (taller) track (0: off)."""
    height_momentum: float = pydantic.Field(0.9, ge=0.0, lt=1.0)
    """The track height the height term compares with: an exponential average of observed box
    heights with this momentum (slow, so a brief wrong match does not move it)."""
    max_predict_frames: int = pydantic.Field(10, ge=0)
    """Constant-velocity prediction runs at most this many frames past the last sighting."""
    velocity_momentum: float = pydantic.Field(0.7, ge=0.0, lt=1.0)
    """How little a new box changes the velocity (its gain is 1 - this, per frame)."""
    box_smoothing: float = pydantic.Field(0.6, gt=0.0, le=1.0)
    """Weight of a new box against the predicted one (1: take measured boxes as they are)."""
    coast_frames: int = pydantic.Field(1, ge=0)
    """Frames with detections that miss a detection-driven track in which it is still published, at
    its constant-velocity predicted box; past that it is published without a box (not visible)
    until a detection matches it again (it stays active for association meanwhile)."""
    coast_min_inside: float = pydantic.Field(0.5, ge=0.0, le=1.0)
    """Least fraction of a coasted box's area inside the image for it to be published (an object
    walking out of the image is not published past the border)."""
    end_outside: bool = True
    """Whether a detection-driven track that goes unmatched while its constant-velocity predicted
    box lies less than ``coast_min_inside`` inside the image ends there (it has walked out), so
    that it cannot take the detections of someone coming in or passing at the border; False: it
    stays active, then lost, and only box detections may not recover it."""
    min_match_score: float = pydantic.Field(0.3, ge=0.0, le=1.0)
    """Least match score for an observation to join a track."""
    duplicate_iou: float = pydantic.Field(0.7, ge=0.0, le=1.0)
    """An unmatched observation overlapping a live track's box this much starts no track."""


@dataclass
class TrackedObject:
    """What propagation says about one live track in this frame.

    Attributes:
        track_id: The track.
        mask: (H, W) bool propagated mask, or None.
        box: (x0, y0, x1, y1) of the propagated mask, or None when nothing is left of it.
        score: Propagation confidence in [0, 1] (e.g. propagated mass relative to the reference).
        prototype: (C,) feature prototype of the propagated mask, or None.
    """

    track_id: int
    mask: np.ndarray | None
    box: Box | None
    score: float
    prototype: np.ndarray | None


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
class _Identity:
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
    height: float = 0.0  # slowly updated box height (``height_momentum``), 0 until first seen

    def predicted_box(self, frame_index: int, horizon: int) -> Box:
        dt = min(max(frame_index - self.last_seen, 0), horizon)
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x0, y0, x1, y1 = self.box
        return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def _unit(v: np.ndarray | None) -> np.ndarray | None:
    if v is None:
        return None
    v = np.asarray(v, dtype=np.float32).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else None


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def _area(box: Box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def _inside_fraction(box: Box, image_size: tuple[int, int]) -> float:
    """Fraction of a box's area inside an image of (height, width); 0 for an empty box."""
    height, width = image_size
    clipped = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height))
    area = _area(box)
    return _area(clipped) / area if area > 0 else 0.0


def _height_change(obs: Box, ref: Box, ref_height: float = 0.0) -> float:
    """|log| of the ratio of two boxes' heights (0 for an empty box); ``ref_height``, when
    positive, stands for the height of ``ref``."""
    h_obs, h_ref = obs[3] - obs[1], (ref_height if ref_height > 0 else ref[3] - ref[1])
    if h_obs <= 0 or h_ref <= 0:
        return 0.0
    return abs(float(np.log(h_obs / h_ref)))


def _within_gate(obs: Box, ref: Box, gate: float | None, size_gate: float) -> bool:
    a_obs, a_ref = _area(obs), _area(ref)
    if a_obs <= 0 or a_ref <= 0:
        return False
    if max(a_obs, a_ref) / min(a_obs, a_ref) > size_gate:
        return False
    if gate is None:
        return True
    (cx, cy), (rx, ry) = _centre(obs), _centre(ref)
    return float(np.hypot(cx - rx, cy - ry)) <= gate * float(np.sqrt(a_ref))


def _mask_overlap(prop: TrackedObject | None, obs: Observation) -> float | None:
    """Mask IoU of a propagated mask and an observed one, when both exist at the same size."""
    if prop is None or prop.mask is None or obs.mask is None:
        return None
    return mask_iou(prop.mask, obs.mask) if prop.mask.shape == obs.mask.shape else None


def _box_mask_iou(mask: np.ndarray, area: int, box: Box) -> float:
    """IoU of a mask (with ``area`` pixels) and the pixels of a box (clipped to the mask)."""
    h, w = mask.shape
    x0, y0 = min(max(round(box[0]), 0), w), min(max(round(box[1]), 0), h)
    x1, y1 = min(max(round(box[2]), x0), w), min(max(round(box[3]), y0), h)
    inter = int(np.count_nonzero(mask[y0:y1, x0:x1]))
    union = area + (x1 - x0) * (y1 - y0) - inter
    return inter / union if union > 0 else 0.0


class IdentityManager:
    """Gives observations track ids, and tracks their life cycle, for one source.

    Args:
        config: Association and life-cycle settings.
        source_id: Source named in the events.
    """

    def __init__(self, config: IdentityConfig | None = None, source_id: str = "") -> None:
        self.config = config or IdentityConfig()
        self.source_id = source_id
        self._tracks: dict[int, _Identity] = {}
        self._next_id = 1
        self._events: list[Event] = []
        self.last_update = IdentityUpdate()
        """What the latest `update` decided (e.g. to report detection boxes of matched tracks)."""
        self._detections_frame: int | None = None  # latest frame that brought detections

    # ----------------------------------------------------------------------------------------
    # queries

    def state(self, track_id: int) -> TrackState:
        """State of a track; ENDED for an id that was given out and has since been dropped."""
        ident = self._tracks.get(track_id)
        if ident is not None:
            return ident.state
        if 1 <= track_id < self._next_id:
            return TrackState.ENDED
        raise KeyError(f"track id {track_id} was never given out by source {self.source_id!r}")

    def label(self, track_id: int) -> str | None:
        """Label of a live track (from its first labelled observation), or None."""
        ident = self._tracks.get(track_id)
        return None if ident is None else ident.label

    def live_ids(self, states: tuple[TrackState, ...] | None = None) -> list[int]:
        """Ids of tracks not yet ended (optionally only those in ``states``), ascending."""
        return sorted(tid for tid, t in self._tracks.items() if states is None or t.state in states)

    def prototype(self, track_id: int) -> np.ndarray | None:
        """Running (L2-normalised) appearance prototype of a live track, or None."""
        ident = self._tracks.get(track_id)
        return None if ident is None else ident.prototype

    def published_box(
        self, track_id: int, frame_index: int, image_size: tuple[int, int], propagated: Box | None
    ) -> Box | None:
        """The box to publish for a live track in this frame (after `update` for it).

        Args:
            track_id: The track.
            frame_index: The frame of the latest `update`.
            image_size: (height, width) of the frame.
            propagated: The box of the track's propagated (or corrected) mask, or None.

        Returns:
            For a track no detection ever matched, or in a frame without detections: the
            propagated box. Otherwise the motion model's: the filtered box when a detection matched
            it in this frame; its constant-velocity prediction for the first ``coast_frames``
            frames whose detections missed it, if at least ``coast_min_inside`` of it lies in the
            image; else None (not visible).
        """
        cfg = self.config
        ident = self._tracks.get(track_id)
        if ident is None or ident.detected is None or self._detections_frame != frame_index:
            return propagated
        if ident.detected == frame_index:
            return ident.box
        if ident.detection_misses > cfg.coast_frames:
            return None
        box = ident.predicted_box(frame_index, cfg.max_predict_frames)
        return box if _inside_fraction(box, image_size) >= cfg.coast_min_inside else None

    def pop_events(self) -> list[Event]:
        """Events since the last call (track.started/lost/recovered/ended), oldest first."""
        events, self._events = self._events, []
        return events

    # ----------------------------------------------------------------------------------------
    # per-frame update

    def update(
        self,
        frame_index: int,
        tracked: list[TrackedObject],
        observations: list[Observation],
        prototypes: list[np.ndarray | None],
        image_size: tuple[int, int] | None = None,
    ) -> IdentityUpdate:
        """Link this frame's observations to tracks and advance every track's life cycle.

        Args:
            frame_index: Index of the frame (increasing).
            tracked: Propagation's view of live tracks in this frame (any subset of them).
            observations: What was newly seen in this frame.
            prototypes: One feature prototype (or None) per observation.
            image_size: (height, width) of the frame: a lost track whose predicted box is less
                than ``coast_min_inside`` inside it has walked out, and box-only detections do
                not bring it back; with ``end_outside`` an unmatched detection-driven track whose
                prediction has walked out ends (None: no such test).

        Returns:
            The decisions for this frame.
        """
        if len(prototypes) != len(observations):
            raise ValueError(
                f"prototypes has {len(prototypes)} entries for {len(observations)} observations; "
                "pass one prototype (or None) per observation"
            )
        cfg = self.config
        update = IdentityUpdate()
        props = {t.track_id: t for t in tracked if t.track_id in self._tracks}
        protos = [_unit(p) for p in prototypes]

        # Observations drive a track's motion model; once it has not been observed for longer
        # than the prediction horizon, propagation moves it (as it does prompt-only tracks).
        for tid, obj in props.items():
            ident = self._tracks[tid]
            seen = obj.box is not None and obj.score >= cfg.lost_score
            stale = frame_index - ident.observed > cfg.max_predict_frames
            if ident.state != TrackState.LOST and seen and stale:
                self._move(ident, obj.box, frame_index)

        # A lost track's own verifier found it: that track comes back, wherever it is.
        verified = [
            (i, o.for_track)
            for i, o in enumerate(observations)
            if o.for_track is not None and self._tracks.get(o.for_track) is not None
            and self._tracks[o.for_track].state == TrackState.LOST
        ]  # fmt: skip
        candidates = [
            i for i, o in enumerate(observations) if not o.from_prompt and o.for_track is None
        ]
        pairs = verified + self._assign(
            frame_index, candidates, observations, protos, props, image_size
        )
        for oi, tid in pairs:
            ident = self._tracks[tid]
            obs = observations[oi]
            if ident.state == TrackState.LOST:
                ident.state = TrackState.ACTIVE
                ident.lost_since = None
                update.recovered[oi] = tid
                self._emit("track.recovered", frame_index, ident)
            else:
                update.matched[oi] = tid
            self._observe(ident, obs, protos[oi], frame_index)
            if ident.state == TrackState.TENTATIVE and ident.hits >= cfg.confirm_frames:
                ident.state = TrackState.ACTIVE
                self._emit("track.started", frame_index, ident)

        matched_ids = {tid for _, tid in pairs}
        detected = any(not observations[i].for_lost for i in candidates)
        self._age(frame_index, props, matched_ids, detected, update, image_size)
        if detected:
            self._detections_frame = frame_index
            by_detection = {tid for oi, tid in pairs if not observations[oi].for_lost}
            for tid, ident in self._tracks.items():
                if tid in by_detection:
                    ident.detected, ident.detection_misses = frame_index, 0
                elif ident.detected is not None:
                    ident.detection_misses += 1

        # Births: prompts always; other unmatched observations unless they duplicate a live track.
        assigned = {oi for oi, _ in pairs}
        live_boxes = [
            t.box
            for t in self._tracks.values()
            if t.state != TrackState.LOST and t.last_seen == frame_index
        ] + [
            p.box
            for p in props.values()
            if p.box is not None
            and p.score >= cfg.lost_score
            and self.state(p.track_id) in (TrackState.TENTATIVE, TrackState.ACTIVE)
        ]
        for oi, obs in enumerate(observations):
            if oi in assigned or obs.for_lost or obs.for_track is not None:
                continue
            if not obs.from_prompt and live_boxes:
                overlap = box_iou(np.array([obs.box]), np.array(live_boxes)).max()
                if overlap >= cfg.duplicate_iou:
                    continue
            ident = self._birth(obs, protos[oi], frame_index)
            if not obs.from_prompt:
                ident.detected = frame_index
            update.born[oi] = ident.track_id
            live_boxes.append(ident.box)
        self.last_update = update
        return update

    def remove(self, track_id: int, frame_index: int | None = None) -> bool:
        """End a live track now (a "track.ended" event with message "removed"); its id is not
        reused. Returns False when the track had already ended.

        Raises:
            KeyError: the id was never given out.
        """
        if self.state(track_id) == TrackState.ENDED:
            return False
        ident = self._tracks.pop(track_id)
        ident.state = TrackState.ENDED
        self._emit("track.ended", frame_index, ident, message="removed")
        return True

    def _assign(
        self,
        frame_index: int,
        candidates: list[int],
        observations: list[Observation],
        protos: list[np.ndarray | None],
        props: dict[int, TrackedObject],
        image_size: tuple[int, int] | None,
    ) -> list[tuple[int, int]]:
        """One Hungarian assignment of observations to tentative, active and lost tracks."""
        cfg = self.config
        idents = list(self._tracks.values())
        if not candidates or not idents:
            return []
        score = np.full((len(candidates), len(idents)), -1.0)
        obs_boxes = np.array([observations[i].box for i in candidates], dtype=np.float64)
        for j, ident in enumerate(idents):
            lost = ident.state == TrackState.LOST
            discount = {
                TrackState.LOST: cfg.reid_discount,
                TrackState.TENTATIVE: cfg.tentative_discount,
            }.get(ident.state, 1.0)
            predicted = ident.predicted_box(frame_index, cfg.max_predict_frames)
            prop = None if lost else props.get(ident.track_id)
            refs = [predicted]
            stale = frame_index - ident.observed > cfg.max_predict_frames
            if stale and prop is not None and prop.box is not None and prop.score >= cfg.lost_score:
                refs.append(prop.box)
            ious = box_iou(obs_boxes, np.array(refs)).max(axis=1)
            walked_out = (
                lost
                and image_size is not None
                and _inside_fraction(predicted, image_size) < cfg.coast_min_inside
            )
            prop_mask = None if prop is None or cfg.box_mask_weight == 0 else prop.mask
            prop_area = 0 if prop_mask is None else int(np.count_nonzero(prop_mask))
            for r, oi in enumerate(candidates):
                obs = observations[oi]
                if obs.for_lost and not lost:
                    continue
                gate = cfg.reid_gate if lost else cfg.gate
                if not any(_within_gate(obs.box, ref, gate, cfg.size_gate) for ref in refs):
                    continue
                overlap = float(ious[r])
                if (m := _mask_overlap(prop, obs)) is not None:
                    overlap = m
                elif obs.mask is None and prop_mask is not None and prop_area > 0:
                    by_mask = _box_mask_iou(prop_mask, prop_area, obs.box)
                    overlap += cfg.box_mask_weight * (by_mask - overlap)
                by_looks = lost and (obs.mask is not None or obs.for_lost or cfg.box_reid_by_looks)
                if not by_looks and (overlap < cfg.min_iou or walked_out):
                    continue
                appearance = self._appearance(ident, protos[oi], prop, lost)
                if lost and appearance is not None and appearance < cfg.reid_threshold:
                    continue
                combined = self._combine(overlap, appearance)
                if by_looks and appearance is not None:  # looks alone may re-identify (in gate)
                    combined = max(combined, self._combine(1.0, appearance))
                if cfg.height_weight > 0:
                    change = _height_change(obs.box, ident.box, ident.height)
                    combined -= cfg.height_weight * change
                if combined >= cfg.min_match_score:
                    score[r, j] = combined * discount
        feasible = score >= 0
        rows, cols = linear_sum_assignment(-np.where(feasible, score, -1e3))
        return [
            (candidates[r], idents[c].track_id)
            for r, c in zip(rows, cols, strict=True)
            if feasible[r, c]
        ]

    def _appearance(
        self,
        ident: _Identity,
        proto: np.ndarray | None,
        prop: TrackedObject | None,
        lost: bool,
    ) -> float | None:
        if proto is None:
            return None
        refs: list[np.ndarray] = list(ident.gallery) if lost else []
        if ident.prototype is not None:
            refs.append(ident.prototype)
        elif prop is not None and (p := _unit(prop.prototype)) is not None:
            refs.append(p)
        refs = [r for r in refs if r.shape == proto.shape]
        if not refs:
            return None
        return float(max(np.dot(r, proto) for r in refs))

    def _combine(self, overlap: float, appearance: float | None) -> float:
        cfg = self.config
        if appearance is None or cfg.appearance_weight == 0:
            return overlap
        total = cfg.iou_weight + cfg.appearance_weight
        resemblance = (appearance - cfg.appearance_floor) / (1.0 - cfg.appearance_floor)
        resemblance = min(max(resemblance, 0.0), 1.0)
        return (cfg.iou_weight * overlap + cfg.appearance_weight * resemblance) / total

    def _age(
        self,
        frame_index: int,
        props: dict[int, TrackedObject],
        matched_ids: set[int],
        had_observations: bool,
        update: IdentityUpdate,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        """Advance unmatched tracks: drop stale tentatives, lose faded actives, end old lost and
        those that walked out of the image."""
        cfg = self.config
        for tid in list(self._tracks):
            ident = self._tracks[tid]
            if tid in matched_ids:
                continue
            if (
                cfg.end_outside
                and image_size is not None
                and ident.state != TrackState.TENTATIVE
                and ident.detected is not None
                and ident.born != frame_index
                and _inside_fraction(
                    ident.predicted_box(frame_index, cfg.max_predict_frames), image_size
                )
                < cfg.coast_min_inside
            ):
                ident.state = TrackState.ENDED
                del self._tracks[tid]
                update.ended.append(tid)
                self._emit("track.ended", frame_index, ident, message="left the image")
                continue
            if ident.state == TrackState.TENTATIVE:
                ident.misses += 1
                if ident.misses > cfg.tentative_max_misses:
                    del self._tracks[tid]
                    update.ended.append(tid)
            elif ident.state == TrackState.ACTIVE:
                if ident.born == frame_index:
                    continue  # born by an earlier call for this same frame
                prop = props.get(tid)
                faded = prop is None or prop.box is None or prop.score < cfg.lost_score
                if had_observations:
                    ident.unmatched += 1
                limit = cfg.max_unmatched_frames
                if faded or (limit is not None and ident.unmatched > limit):
                    ident.state = TrackState.LOST
                    ident.lost_since = frame_index
                    update.lost.append(tid)
                    self._emit("track.lost", frame_index, ident)
            elif ident.state == TrackState.LOST:
                lost_since = frame_index if ident.lost_since is None else ident.lost_since
                if frame_index - lost_since >= cfg.lost_timeout_frames:
                    ident.state = TrackState.ENDED
                    del self._tracks[tid]
                    update.ended.append(tid)
                    self._emit("track.ended", frame_index, ident)

    # ----------------------------------------------------------------------------------------
    # book-keeping

    def _birth(self, obs: Observation, proto: np.ndarray | None, frame_index: int) -> _Identity:
        state = TrackState.ACTIVE if obs.from_prompt or self.config.confirm_frames <= 1 else None
        ident = _Identity(
            track_id=self._next_id,
            state=state or TrackState.TENTATIVE,
            label=obs.label,
            box=tuple(float(v) for v in obs.box),
            last_seen=frame_index,
            observed=frame_index,
            born=frame_index,
            prototype=proto,
            gallery=deque(maxlen=self.config.gallery_size),
        )
        self._next_id += 1
        if proto is not None:
            ident.gallery.append(proto)
            ident.gallery_frame = frame_index
        self._tracks[ident.track_id] = ident
        if ident.state == TrackState.ACTIVE:
            self._emit("track.started", frame_index, ident)
        return ident

    def _observe(
        self, ident: _Identity, obs: Observation, proto: np.ndarray | None, frame_index: int
    ) -> None:
        cfg = self.config
        self._move(ident, obs.box, frame_index)
        h_obs = float(obs.box[3] - obs.box[1])
        if ident.height <= 0:
            ident.height = h_obs
        elif h_obs > 0:
            ident.height = cfg.height_momentum * ident.height + (1 - cfg.height_momentum) * h_obs
        ident.observed = frame_index
        ident.hits += 1
        ident.misses = 0
        ident.unmatched = 0
        if ident.label is None:
            ident.label = obs.label
        if proto is None:
            return
        if ident.prototype is None or ident.prototype.shape != proto.shape:
            ident.prototype = proto
        else:
            mixed = cfg.prototype_momentum * ident.prototype + (1 - cfg.prototype_momentum) * proto
            ident.prototype = _unit(mixed)
        if frame_index - ident.gallery_frame >= cfg.gallery_interval:
            ident.gallery.append(proto)
            ident.gallery_frame = frame_index

    def _move(self, ident: _Identity, box: Box, frame_index: int) -> None:
        """Alpha-beta filter: blend the measured box with the constant-velocity prediction."""
        cfg = self.config
        box = tuple(float(v) for v in box)
        dt = frame_index - ident.last_seen
        if dt > 0:
            px, py = _centre(ident.predicted_box(frame_index, cfg.max_predict_frames))
            (cx, cy) = _centre(box)
            a = cfg.box_smoothing
            rx, ry = cx - px, cy - py  # residual against the prediction
            gain = (1 - cfg.velocity_momentum) / dt
            ident.velocity = (ident.velocity[0] + gain * rx, ident.velocity[1] + gain * ry)
            cx, cy = px + a * rx, py + a * ry
            w0, h0 = ident.box[2] - ident.box[0], ident.box[3] - ident.box[1]
            w = w0 + a * (box[2] - box[0] - w0)
            h = h0 + a * (box[3] - box[1] - h0)
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        ident.box = box
        ident.last_seen = frame_index

    def _emit(
        self, kind: str, frame_index: int | None, ident: _Identity, message: str | None = None
    ) -> None:
        self._events.append(
            Event(
                kind=kind,
                source_id=self.source_id,
                wall_time=time.time(),
                frame_index=frame_index,
                track_id=ident.track_id,
                message=message,
                extra={"label": ident.label},
            )
        )

    # ----------------------------------------------------------------------------------------
    # checkpoints

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable snapshot (pending events are not included)."""
        return {
            "next_id": self._next_id,
            "detections_frame": self._detections_frame,
            "tracks": [
                {
                    "track_id": t.track_id,
                    "state": t.state.value,
                    "label": t.label,
                    "box": list(t.box),
                    "last_seen": t.last_seen,
                    "observed": t.observed,
                    "born": t.born,
                    "velocity": list(t.velocity),
                    "hits": t.hits,
                    "misses": t.misses,
                    "unmatched": t.unmatched,
                    "detected": t.detected,
                    "detection_misses": t.detection_misses,
                    "lost_since": t.lost_since,
                    "prototype": None if t.prototype is None else t.prototype.tolist(),
                    "gallery": [g.tolist() for g in t.gallery],
                    "gallery_frame": t.gallery_frame,
                    "height": t.height,
                }
                for t in self._tracks.values()
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a snapshot made by `state_dict` (replaces every track)."""
        self._next_id = int(state["next_id"])
        self._detections_frame = state.get("detections_frame")
        self._tracks = {}
        for d in state["tracks"]:
            proto = d["prototype"]
            ident = _Identity(
                track_id=int(d["track_id"]),
                state=TrackState(d["state"]),
                label=d["label"],
                box=tuple(float(v) for v in d["box"]),
                last_seen=int(d["last_seen"]),
                observed=int(d["observed"]),
                born=int(d["born"]),
                velocity=(float(d["velocity"][0]), float(d["velocity"][1])),
                hits=int(d["hits"]),
                misses=int(d["misses"]),
                unmatched=int(d["unmatched"]),
                detected=d.get("detected"),
                detection_misses=int(d.get("detection_misses", 0)),
                lost_since=d["lost_since"],
                prototype=None if proto is None else np.asarray(proto, dtype=np.float32),
                gallery=deque(
                    (np.asarray(g, dtype=np.float32) for g in d["gallery"]),
                    maxlen=self.config.gallery_size,
                ),
                gallery_frame=int(d["gallery_frame"]),
                height=float(d.get("height", 0.0)),
            )
            self._tracks[ident.track_id] = ident
