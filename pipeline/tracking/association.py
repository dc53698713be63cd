"""Scoring an observation against a tentative or active track, and the one assignment.

`pair_score` combines

* overlap: mask IoU with the propagated mask when both masks are known, else box IoU with a
  constant-velocity prediction of the last observed box (observations drive the motion model:
  propagated boxes drift, so the propagated box only stands in once a track has gone unobserved for
  longer than ``max_predict_frames``, as prompt-only tracks do), mixed for a box-only observation
  with the IoU of its box and the propagated mask (``box_mask_weight``): where two people cross,
  their predicted boxes are alike but the label propagation has given each one its own pixels;
* appearance: cosine similarity of the observation's feature prototype with the track's running
  prototype;
* size: ``height_weight`` times |log| of the ratio of the observed box's height to the track's
  slowly averaged box height (``height_momentum``) is taken off (a person in front of another is
  taller: their boxes are nearly concentric and IoU hardly tells them apart);
* a motion gate: the distance between box centres, relative to the track's size, must be under
  ``gate``, and the box areas may differ by at most ``size_gate``x.

Lost tracks are scored by `pipeline.tracking.reid.lost_pair_score`, from the same terms; `assign`
solves one Hungarian assignment over both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.masks import box_iou, mask_iou
from pipeline.tracking.config import AssociationConfig, IdentityConfig
from pipeline.tracking.motion import area, centre, predicted_box
from pipeline.tracking.records import Box, Identity, TrackedObject
from pipeline.types import Observation, TrackState


@dataclass
class TrackView:
    """What a pairing needs to know of one track in this frame (computed once per track).

    Attributes:
        predicted: Constant-velocity prediction of the track's box.
        refs: Boxes an observation is compared with: the prediction, and the propagated box once
            the track has gone unobserved past the prediction horizon.
        prop: Propagation's view of the track (None for lost tracks or when not reported).
        prop_mask: The propagated mask for the box-mask term (None when that term is off).
        prop_area: Its pixel count.
    """

    predicted: Box
    refs: list[Box]
    prop: TrackedObject | None
    prop_mask: np.ndarray | None
    prop_area: int


def track_view(
    ident: Identity, prop: TrackedObject | None, frame_index: int, config: IdentityConfig
) -> TrackView:
    predicted = predicted_box(ident, frame_index, config.motion)
    refs = [predicted]
    stale = frame_index - ident.observed > config.motion.max_predict_frames
    if (
        stale
        and prop is not None
        and prop.box is not None
        and prop.score >= config.lifecycle.lost_score
    ):
        refs.append(prop.box)
    prop_mask = None if prop is None or config.association.box_mask_weight == 0 else prop.mask
    prop_area = 0 if prop_mask is None else int(np.count_nonzero(prop_mask))
    return TrackView(predicted, refs, prop, prop_mask, prop_area)


def unit(v: np.ndarray | None) -> np.ndarray | None:
    if v is None:
        return None
    v = np.asarray(v, dtype=np.float32).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else None


def within_gate(obs: Box, ref: Box, gate: float | None, size_gate: float) -> bool:
    a_obs, a_ref = area(obs), area(ref)
    if a_obs <= 0 or a_ref <= 0:
        return False
    if max(a_obs, a_ref) / min(a_obs, a_ref) > size_gate:
        return False
    if gate is None:
        return True
    (cx, cy), (rx, ry) = centre(obs), centre(ref)
    return float(np.hypot(cx - rx, cy - ry)) <= gate * float(np.sqrt(a_ref))


def height_change(obs: Box, ref: Box, ref_height: float = 0.0) -> float:
    """|log| of the ratio of two boxes' heights (0 for an empty box); ``ref_height``, when
    positive, stands for the height of ``ref``."""
    h_obs, h_ref = obs[3] - obs[1], (ref_height if ref_height > 0 else ref[3] - ref[1])
    if h_obs <= 0 or h_ref <= 0:
        return 0.0
    return abs(float(np.log(h_obs / h_ref)))


def box_mask_iou(mask: np.ndarray, mask_area: int, box: Box) -> float:
    """IoU of a mask (with ``mask_area`` pixels) and the pixels of a box (clipped to the mask)."""
    h, w = mask.shape
    x0, y0 = min(max(round(box[0]), 0), w), min(max(round(box[1]), 0), h)
    x1, y1 = min(max(round(box[2]), x0), w), min(max(round(box[3]), y0), h)
    inter = int(np.count_nonzero(mask[y0:y1, x0:x1]))
    union = mask_area + (x1 - x0) * (y1 - y0) - inter
    return inter / union if union > 0 else 0.0


def overlap(view: TrackView, obs: Observation, config: AssociationConfig) -> float:
    """Mask IoU with the propagated mask when both masks exist at one size; else box IoU with the
    reference boxes, mixed for a box-only observation with its IoU with the propagated mask."""
    prop = view.prop
    masks = prop is not None and prop.mask is not None and obs.mask is not None
    if masks and prop.mask.shape == obs.mask.shape:
        return mask_iou(prop.mask, obs.mask)
    value = float(box_iou(np.array([obs.box], dtype=np.float64), np.array(view.refs)).max())
    if obs.mask is None and view.prop_mask is not None and view.prop_area > 0:
        by_mask = box_mask_iou(view.prop_mask, view.prop_area, obs.box)
        value += config.box_mask_weight * (by_mask - value)
    return value


def best_similarity(refs: list[np.ndarray], proto: np.ndarray | None) -> float | None:
    """Greatest cosine similarity of a unit prototype with unit references of its size."""
    if proto is None:
        return None
    refs = [r for r in refs if r.shape == proto.shape]
    if not refs:
        return None
    return float(max(np.dot(r, proto) for r in refs))


def combine(overlap_: float, appearance: float | None, config: AssociationConfig) -> float:
    """Weighted mean of overlap and resemblance (appearance mapped from [floor, 1] to [0, 1])."""
    if appearance is None or config.appearance_weight == 0:
        return overlap_
    total = config.iou_weight + config.appearance_weight
    resemblance = (appearance - config.appearance_floor) / (1.0 - config.appearance_floor)
    resemblance = min(max(resemblance, 0.0), 1.0)
    return (config.iou_weight * overlap_ + config.appearance_weight * resemblance) / total


def height_penalty(ident: Identity, obs: Observation, config: AssociationConfig) -> float:
    if config.height_weight <= 0:
        return 0.0
    return config.height_weight * height_change(obs.box, ident.box, ident.height)


def pair_score(
    ident: Identity, view: TrackView, obs: Observation, config: IdentityConfig
) -> float | None:
    """Match score of an observation (with a unit prototype) and a tentative or active track, or
    None when they cannot be paired (a re-detection, outside the gate, too little overlap, or a
    score under ``min_match_score``). Tentative tracks' scores are discounted."""
    cfg = config.association
    if obs.origin == "redetection":
        return None
    if not any(within_gate(obs.box, ref, cfg.gate, cfg.size_gate) for ref in view.refs):
        return None
    value = overlap(view, obs, cfg)
    if value < cfg.min_iou:
        return None
    refs = []
    if ident.prototype is not None:
        refs.append(ident.prototype)
    elif view.prop is not None and (p := unit(view.prop.prototype)) is not None:
        refs.append(p)
    combined = combine(value, best_similarity(refs, obs.prototype), cfg)
    combined -= height_penalty(ident, obs, cfg)
    if combined < cfg.min_match_score:
        return None
    return combined * (cfg.tentative_discount if ident.state == TrackState.TENTATIVE else 1.0)


def assign(score: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs of the Hungarian assignment maximising ``score`` (rows: observations,
    columns: tracks); negative entries are infeasible and never paired."""
    feasible = score >= 0
    rows, cols = linear_sum_assignment(-np.where(feasible, score, -1e3))
    return [(r, c) for r, c in zip(rows, cols, strict=True) if feasible[r, c]]
