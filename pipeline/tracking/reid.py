"""Re-identification of lost tracks: their gallery of prototypes, their re-detection in the
patch features, and how an observation is scored against a lost track.

A lost track keeps a bounded gallery of prototypes (``gallery_size``, one every
``gallery_interval`` frames while it is followed). Every frame, `redetect_lost` looks for each lost
track where its running prototype peaks in the patch features and offers that region as a
``"redetection"`` observation. `lost_pair_score` scores any observation against a lost track: the
best cosine similarity with its gallery must reach ``threshold``; the observation must lie within
the loose ``gate`` of the track's predicted box; masked observations and re-detections may
re-identify on looks alone there, box-only detections only where they overlap the prediction (unless
``box_by_looks``) and not once the prediction has walked out of the image. Lost tracks' scores are
discounted (``discount``) in the one assignment, so followed tracks win contested observations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.masks import mask_to_box
from pipeline.tracking.association import (
    TrackView,
    best_similarity,
    combine,
    height_penalty,
    overlap,
    within_gate,
)
from pipeline.tracking.config import IdentityConfig, ReidConfig
from pipeline.tracking.motion import walked_out
from pipeline.tracking.records import Identity
from pipeline.types import FeatureMap, Observation, TrackState

if TYPE_CHECKING:
    from pipeline.tracking.lifecycle import IdentityManager


def add_to_gallery(
    ident: Identity, proto: np.ndarray, frame_index: int, config: ReidConfig
) -> None:
    """Keep a prototype of a followed track, at most one every ``gallery_interval`` frames."""
    if frame_index - ident.gallery_frame >= config.gallery_interval:
        ident.gallery.append(proto)
        ident.gallery_frame = frame_index


def lost_pair_score(
    ident: Identity,
    view: TrackView,
    obs: Observation,
    frame_index: int,
    image_size: tuple[int, int] | None,
    config: IdentityConfig,
) -> float | None:
    """Match score of an observation (with a unit prototype) and a lost track, discounted by
    ``reid.discount``, or None when the observation cannot bring the track back."""
    cfg, reid = config.association, config.reid
    if not any(within_gate(obs.box, ref, reid.gate, cfg.size_gate) for ref in view.refs):
        return None
    value = overlap(view, obs, cfg)
    by_looks = obs.mask is not None or obs.origin == "redetection" or reid.box_by_looks
    if not by_looks and (
        value < cfg.min_iou or walked_out(ident, frame_index, image_size, config.motion)
    ):
        return None
    refs = list(ident.gallery)
    if ident.prototype is not None:
        refs.append(ident.prototype)
    appearance = best_similarity(refs, obs.prototype)
    if appearance is not None and appearance < reid.threshold:
        return None
    combined = combine(value, appearance, cfg)
    if by_looks and appearance is not None:  # looks alone may re-identify (within the gate)
        combined = max(combined, combine(1.0, appearance, cfg))
    combined -= height_penalty(ident, obs, cfg)
    if combined < cfg.min_match_score:
        return None
    return combined * reid.discount


def redetect_lost(
    identities: IdentityManager,
    features: FeatureMap,
    image_size: tuple[int, int],
    skip: set[int] | frozenset[int] = frozenset(),
) -> list[Observation]:
    """Where each lost track's prototype matches best in this frame, if well enough
    (``redetect_threshold``): the region of grid cells around the peak whose similarity is within
    ``redetect_margin`` of it, as a ``"redetection"`` observation at the frame's (height, width).
    The identity manager decides (`lost_pair_score`) whether it is the lost object. Tracks in
    ``skip`` are searched for elsewhere (by their presence verifier)."""
    import cv2
    from scipy import ndimage

    reid = identities.config.reid
    lost = identities.live_ids((TrackState.LOST,))
    if not lost or reid.redetect_threshold is None:
        return []
    h, w = image_size
    grid = features.grid
    out: list[Observation] = []
    for tid in lost:
        if tid in skip:
            continue
        proto = identities.prototype(tid)
        if proto is None or proto.shape[0] != grid.shape[-1]:
            continue
        sim = grid @ proto
        peak = float(sim.max())
        if peak < reid.redetect_threshold:
            continue
        labels, _ = ndimage.label(sim >= peak - reid.redetect_margin)
        cells = labels == labels[np.unravel_index(int(sim.argmax()), sim.shape)]
        mask = cv2.resize(cells.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        box = mask_to_box(mask.astype(bool))
        if box is not None:
            label = identities.label(tid)
            out.append(Observation(box, mask.astype(bool), peak, label, origin="redetection"))
    return out
