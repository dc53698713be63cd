"""The per-frame tracker of one source: label propagation + identities (+ optional SAM refinement).

Every frame: prompts that are due are resolved to observations; the label propagator carries every
live object's soft mask from its bounded memory to the frame; the probabilities are upsampled to the
frame's full size and each object gets the pixels where its channel wins; each object's mask, box,
score, soft map and feature prototype travel as one `TrackedObject` to the `IdentityManager`,
together with the frame's observations (prompts, detections, re-detections of lost tracks from
`pipeline.tracking.reid`), each carrying its own prototype; births and recoveries seed the
propagator, lost and ended tracks leave it. Optionally,
on keyframes or when an object's confidence falls, the segmenter refines the propagated mask and the
refined mask (kept only where it agrees with the propagation) is written back into the memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.masks import box_to_mask, mask_to_box, rle_encode
from pipeline.models.base import MaskRequest, Segmenter
from pipeline.models.upsample import cell_radius
from pipeline.models.upsample import upsample_probs as guided_upsample
from pipeline.prompts.schedule import PromptSchedule
from pipeline.tracking.config import TrackerConfig
from pipeline.tracking.framing import Framing
from pipeline.tracking.lifecycle import IdentityManager
from pipeline.tracking.presence import PresenceVerifier, grid_mask
from pipeline.tracking.propagation import LabelPropagator, downsample_mask
from pipeline.tracking.records import TrackedObject
from pipeline.tracking.reid import redetect_lost
from pipeline.types import Event, FeatureMap, Frame, FrameResult, Observation, Track, TrackState


def upsample_probs(probs: np.ndarray, image: np.ndarray, mode: str = "guided") -> np.ndarray:
    """(K+1, h, w) grid probabilities to (K+1, H, W) at the image's size: ``guided`` follows the
    image's edges (``pipeline.models.upsample``), ``bilinear`` interpolates."""
    if mode == "guided":
        radius = cell_radius(probs.shape[1:], image.shape)
        return np.asarray(guided_upsample(probs, image, radius), dtype=np.float32)
    h, w = image.shape[:2]
    t = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))[None]
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0].numpy()


def _unit(v: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else None


def _prototype(grid: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """L2-normalised mean of (h, w, C) patch features weighted by (h, w) ``weights``, over the
    weighted cells only (the cost follows the object, not the frame); None when none is."""
    idx = np.flatnonzero(weights)
    if len(idx) == 0:
        return None
    flat = grid.reshape(-1, grid.shape[-1])
    # einsum, not BLAS: a multi-threaded OpenBLAS gemv is erratic on a busy machine
    return _unit(np.einsum("kc,k->c", flat[idx], weights.reshape(-1)[idx]))


def mask_prototype(features: FeatureMap, mask: np.ndarray | None) -> np.ndarray | None:
    """L2-normalised mean of the patch features under a mask (any resolution), or None if empty."""
    if mask is None:
        return None
    return _prototype(features.grid, downsample_mask(mask, features.shape))


def _full_mask(obs: Observation, height: int, width: int) -> np.ndarray:
    """An observation's mask, or the pixels of its box when only a box is known."""
    return obs.mask if obs.mask is not None else box_to_mask(obs.box, height, width)


class Tracker:
    """Follows the objects of one source frame by frame.

    Args:
        source_id: The source, named in results and events.
        config: Tracker settings.
        segmenter: Refines masks when refinement is enabled and it is not the ``none``
            segmenter.
        backbone_name: Name of the backbone whose features are passed to `step`.
        prompts: The source's prompts, built with what resolving them needs (default: an empty
            schedule with ``segmenter``, no text detector and no backbone); add prompts with
            ``tracker.prompts.add``.
    """

    def __init__(
        self,
        source_id: str,
        config: TrackerConfig,
        segmenter: Segmenter,
        backbone_name: str,
        *,
        prompts: PromptSchedule | None = None,
    ) -> None:
        self.source_id = source_id
        self.config = config
        self.segmenter = segmenter
        self.backbone_name = backbone_name
        self.propagator = LabelPropagator(config.propagation)
        self.identities = IdentityManager(config.identity, source_id=source_id)
        self.prompts = prompts if prompts is not None else PromptSchedule(segmenter)
        self.presence = PresenceVerifier(config.presence)
        self._framing: dict[int, Framing] = {}
        self._last_index: int | None = None
        self._events: list[Event] = []

    # -- inputs -----------------------------------------------------------------------------
    def remove_track(self, track_id: int) -> None:
        """Stop following a track: it ends now (a track.ended event) and its id is not reused.

        Raises:
            KeyError: the track id was never given out for this source.
        """
        self.propagator.remove_objects([track_id])
        self.identities.remove(track_id, self._last_index)
        self._framing.pop(track_id, None)

    def pop_events(self) -> list[Event]:
        """Track events since the last call (track.started/lost/recovered/ended), oldest first."""
        events, self._events = self._events, []
        return sorted([*self.identities.pop_events(), *events], key=lambda e: e.wall_time)

    # -- the frame loop ---------------------------------------------------------------------
    def step(
        self, frame: Frame, features: FeatureMap, detections: Sequence[Observation] = ()
    ) -> FrameResult:
        """Track one frame.

        Args:
            frame: The decoded frame (indices must increase).
            features: Its patch features (from the backbone named at construction).
            detections: Extra observations of this frame (e.g. an external detector's).

        Returns:
            Every live track with its state, score, box and COCO RLE mask at the frame's size.
        """
        if self._last_index is not None and frame.index <= self._last_index:
            raise ValueError(
                f"frame {frame.index} of source {self.source_id!r} does not follow frame "
                f"{self._last_index}: frames must be given in increasing index order"
            )
        self._last_index = frame.index
        h, w = frame.height, frame.width
        observations = self.prompts.observations(frame, features) + list(detections)
        observations += self._redetect_lost(frame, features)
        observations = [
            o if o.prototype is not None
            else replace(o, prototype=mask_prototype(features, _full_mask(o, h, w)))
            for o in observations
        ]  # fmt: skip

        objects: dict[int, TrackedObject] = {}
        if self.propagator.object_ids:
            objects = self._masks(self.propagator.step(features), frame.image, features)
            self._refine(frame, features, objects)
        hidden = self._verify(frame, features, objects)
        update = self.identities.update(frame.index, list(objects.values()), observations, (h, w))

        # a matched detection is a fresh look at the object: it replaces the propagated mask
        corrected = {tid: _full_mask(observations[oi], h, w) for oi, tid in update.matched.items()
                     if observations[oi].origin != "redetection"}  # fmt: skip
        corrected = {tid: m for tid, m in corrected.items() if m.any()}
        if corrected:
            self.propagator.correct({t: m for t, m in corrected.items() if t in objects})
            for tid, m in corrected.items():
                obj = objects.setdefault(tid, TrackedObject(tid, m, None, 0.0, None))
                obj.mask, obj.box = m, mask_to_box(m)
        for tid in update.lost:
            self.presence.mark_lost(tid, frame.index)
        for tid in update.ended:
            self.presence.forget(tid)
            self._framing.pop(tid, None)
        leaving = list(update.lost) + list(update.ended)
        self.propagator.remove_objects(leaving)
        for tid in leaving + hidden:
            objects.pop(tid, None)
        seeds = {**update.born, **update.recovered}
        if seeds:
            new = {tid: _full_mask(observations[oi], h, w) for oi, tid in seeds.items()}
            self.propagator.add_objects(features, new)
            for oi, tid in seeds.items():
                obs = observations[oi]
                box = mask_to_box(new[tid], self.config.min_area)
                objects[tid] = TrackedObject(tid, new[tid], box, float(obs.score), obs.prototype)
                if obs.origin == "prompt" and tid in update.born.values():
                    if obs.framing is not None and box is not None:
                        self._framing[tid] = Framing.of(obs.framing, box)
                    weights = downsample_mask(new[tid], features.shape)
                    self.presence.enrol(tid, features, weights, frame.index)
                elif tid in update.recovered.values():
                    self.presence.mark_recovered(tid)
        return FrameResult(
            source_id=self.source_id,
            frame_index=frame.index,
            pts=frame.pts,
            wall_time=frame.wall_time,
            width=w,
            height=h,
            backbone=self.backbone_name,
            tracks=self._tracks(frame.index, objects),
        )

    def _verify(
        self, frame: Frame, features: FeatureMap, objects: dict[int, TrackedObject]
    ) -> list[int]:
        """The presence verdict on each verified active track (`PresenceVerifier.judge`): its
        score becomes its presence; a track absent for ``presence.absent_frames`` frames is handed
        on as faded (score 0, no box), so the life cycle loses it. With ``presence.anchor``, a
        visible track's mask is re-anchored on its appearance memory (`anchor_cells`) and written
        back into the propagation's memory. Returns the tracks not shown in this frame."""
        hidden = []
        anchored: dict[int, np.ndarray] = {}
        for tid, obj in objects.items():
            if tid not in self.presence or self.identities.state(tid) != TrackState.ACTIVE:
                continue
            verdict = self.presence.judge(
                tid, features, obj.weights, frame.index, self.config.crop_margin
            )
            obj.score = verdict.presence
            if not verdict.visible:
                hidden.append(tid)
            if verdict.gone:
                obj.box, obj.score = None, 0.0
            if verdict.visible and verdict.cells is not None:
                mask = grid_mask(
                    verdict.cells, verdict.prob, frame.image, self._upsample,
                    self.config.crop_margin, self.config.min_area,
                )  # fmt: skip
                if mask is not None:
                    mask |= obj.mask
                    obj.mask, obj.box = mask, mask_to_box(mask, self.config.min_area)
                    anchored[tid] = mask
            if verdict.visible and tid in self._framing and obj.box is not None:
                obj.lean = self._framing[tid].lean(
                    obj.box, features.shape, features.image_size,
                    lambda cells, t=tid: self.presence.probability(t, features, cells),
                )  # fmt: skip
        self.propagator.correct(anchored)
        return hidden

    def _upsample(self, probs: np.ndarray, image: np.ndarray) -> np.ndarray:
        return upsample_probs(probs, image, self.config.upsample)

    def _redetect_lost(self, frame: Frame, features: FeatureMap) -> list[Observation]:
        """Re-detections of lost tracks: prompted tracks by their own verifier, anywhere in the
        frame (`PresenceVerifier.reacquire`); the others by their prototype (`redetect_lost`)."""
        lost = self.identities.live_ids((TrackState.LOST,))
        verified = [t for t in lost if t in self.presence]
        out = self.presence.reacquire(
            verified,
            frame.index,
            features,
            frame.image,
            self._upsample,
            {t: self.identities.label(t) for t in verified},
            self.config.crop_margin,
            self.config.min_area,
        )
        skip = set(verified)
        return out + redetect_lost(
            self.identities, features, (frame.height, frame.width), skip=skip
        )

    def _masks(
        self, probs: np.ndarray, image: np.ndarray, features: FeatureMap
    ) -> dict[int, TrackedObject]:
        """Each object's full-size mask, box, confidence, soft map and feature prototype (the
        mean of the patch features weighted by its probability where it wins).

        An object's pixels are those where its probability beats the best other channel. Both maps
        are upsampled only over the object's own region (its cells with probability above
        ``crop_above``, grown by ``crop_margin`` cells), so the cost follows the objects' area, not
        their number times the frame's area.
        """
        cfg = self.config
        ids = self.propagator.object_ids
        height, width = image.shape[:2]
        n_ch, h, w = probs.shape
        decide = probs
        if cfg.normalize_channels:
            lo = probs.min(axis=(1, 2), keepdims=True)
            hi = probs.max(axis=(1, 2), keepdims=True)
            decide = np.where(hi > lo, (probs - lo) / np.maximum(hi - lo, 1e-12), probs)
        order = np.argsort(-decide, axis=0)[:2]
        best = np.take_along_axis(decide, order[:1], 0)[0]
        second = np.take_along_axis(decide, order[1:2], 0)[0]
        winner = order[0]
        sy, sx = height / h, width / w
        views: dict[int, TrackedObject] = {}
        for ch, tid in enumerate(ids, start=1):
            p = probs[ch]
            cells = winner == ch
            near = cells | (p > cfg.crop_above)
            weights = p * cells
            proto = _prototype(features.grid, weights)
            view = TrackedObject(tid, np.zeros((height, width), bool), None, 0.0, proto)
            view.weights = weights
            views[tid] = view
            if not near.any():
                continue
            ys, xs = np.nonzero(near)
            cy0, cy1 = max(0, ys.min() - cfg.crop_margin), min(h, ys.max() + 1 + cfg.crop_margin)
            cx0, cx1 = max(0, xs.min() - cfg.crop_margin), min(w, xs.max() + 1 + cfg.crop_margin)
            py0, py1 = round(cy0 * sy), min(height, round(cy1 * sy))
            px0, px1 = round(cx0 * sx), min(width, round(cx1 * sx))
            crop = (slice(cy0, cy1), slice(cx0, cx1))
            other = np.where(cells, second, best)[crop]
            pair = np.stack([decide[ch][crop], other])
            up = upsample_probs(pair, image[py0:py1, px0:px1], cfg.upsample)
            region = (slice(py0, py1), slice(px0, px1))
            view.mask[region] = up[0] > up[1]
            if int(view.mask[region].sum()) < max(1, cfg.min_area):
                view.mask[region] = False
                continue
            view.soft = (region, up[0])
            x0, y0, x1, y1 = mask_to_box(view.mask[region], cfg.min_area)
            view.box = (x0 + px0, y0 + py0, x1 + px0, y1 + py0)
            view.score = float(p[cells].mean()) if cells.any() else float(p.max())
        return views

    def _refine(self, frame: Frame, features: FeatureMap, views: dict[int, TrackedObject]) -> None:
        """Segmenter refinement on keyframes or low confidence; writes back into the memory."""
        cfg = self.config
        if getattr(self.segmenter, "name", "none") == "none":
            return
        keyframe = cfg.refine_every is not None and frame.index % cfg.refine_every == 0
        todo = [
            tid
            for tid, v in views.items()
            if v.soft is not None
            and (keyframe or (cfg.refine_below is not None and v.score < cfg.refine_below))
        ]
        if not todo:
            return
        requests, softs = [], []
        for tid in todo:
            region, crop = views[tid].soft
            soft = np.zeros(views[tid].mask.shape, np.float32)
            soft[region] = crop
            softs.append(soft)
            y, x = np.unravel_index(
                int(np.argmax(np.where(views[tid].mask, soft, -1.0))), soft.shape
            )
            requests.append(
                MaskRequest(
                    points=np.array([[x, y]], np.float32),
                    point_labels=np.array([1], np.int64),
                    box=mask_to_box(views[tid].mask),
                    mask_input=soft,
                )
            )
        proposals = self.segmenter.segment(frame.image, features, requests)
        refined: dict[int, np.ndarray] = {}
        for tid, soft, prop in zip(todo, softs, proposals, strict=True):
            mask = np.asarray(prop.mask, bool) & (soft >= cfg.refine_agreement)
            if int(mask.sum()) >= max(1, cfg.min_area):
                refined[tid] = mask
                views[tid].mask = mask
                views[tid].box = mask_to_box(mask)
        if refined:
            self.propagator.correct(refined)

    def _tracks(self, frame_index: int, objects: dict[int, TrackedObject]) -> list[Track]:
        """Published tracks: the identity manager decides the box of tracks that follow detections
        (motion model), the mask's box stands for the others."""
        tracks = []
        for tid in self.identities.live_ids():
            state = self.identities.state(tid)
            obj = objects.get(tid)
            mask = None if obj is None else obj.mask
            box = None
            if mask is not None:
                box = self.identities.published_box(tid, frame_index, mask.shape, obj.box)
                if box is not None and tid in self._framing:
                    box = self._framing[tid].apply(box, mask.shape, obj.lean)
            visible = mask is not None and box is not None and state != TrackState.LOST
            tracks.append(
                Track(
                    id=tid,
                    label=self.identities.label(tid),
                    state=state,
                    score=float(obj.score) if visible else 0.0,
                    box=box if visible else None,
                    mask=rle_encode(mask) if visible else None,
                )
            )
        return tracks

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (numpy arrays and plain values; pending prompts as JSON)."""
        return {
            "source_id": self.source_id,
            "last_index": self._last_index,
            "propagator": self.propagator.state_dict(),
            "identities": self.identities.state_dict(),
            "prompts": self.prompts.state_dict(),
            "presence": self.presence.state_dict(),
            "framing": {str(t): f.to_list() for t, f in self._framing.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self._last_index = state["last_index"]
        self.propagator.load_state_dict(state["propagator"])
        self.identities.load_state_dict(state["identities"])
        self.prompts.load_state_dict(state["prompts"])
        self.presence.load_state_dict(state.get("presence", {}))
        self._framing = {int(t): Framing(*f) for t, f in state.get("framing", {}).items()}
