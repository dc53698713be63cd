"""Presence and re-acquisition of prompted objects: an appearance memory, a verifier and a global
re-detector (the long-term pattern of LTMU and the VOT-LT winners, on patch features).

Label propagation follows an object locally, and it always finds *something* to follow: when the
object leaves the view or is hidden, its soft mask flows onto whatever is near. So whether the
object is still there is not the propagation's call. Each prompted track keeps an
`AppearanceMemory`: patch features labelled *object* or *background*, from the prompt frame (kept
for good) and from a bounded number of later frames in which the verifier was confident (never
from doubtful ones), so that the memory neither grows with the video nor drifts onto the
background.

The verifier is label propagation without locality: each query cell takes its ``topk`` most
similar memory cells (object and background together, anywhere in the memory frames), weighs them
by a softmax of cosine similarity over ``temperature`` and averages their labels — its object
probability. This is DINO's k-NN label transfer with the memory reduced to confident frames; it
asks "does this look more like my object, or like what has surrounded it?", which a fixed
similarity threshold cannot.

* **Presence** (an active track): the object probability averaged over the cells of the propagated
  mask, weighted by their propagated probability. Under ``present_above`` (0.5: the cells look
  more like background than like the object) the frame is judged absent: nothing is published for
  the track; after ``absent_frames`` such frames in a row the track is lost and leaves the
  propagation.
* **Re-acquisition** (a lost track): the object probability of every cell of the frame; its
  connected regions above 0.5 are candidates, and the one with the most object mass is the
  object's return when its mean probability reaches ``recover_above`` (hysteresis: coming back
  takes more evidence than staying) and it has at least ``min_cells`` cells. Anywhere in the frame,
  at any scale; its mask is the probability map brought to full resolution. A search costs one
  (cells x memory) product; a lost track is searched for ``search_frames`` frames (None: always),
  and at most ``searches_per_frame`` tracks are searched in a frame (those searched longest ago
  first), so that many lost tracks cost a bounded time per frame; a return is confirmed by
  ``confirm_frames`` searches in a row.
* **Memory**: a frame whose presence is at least ``confident_above`` adds a sample (at most one
  every ``memory_every`` frames, ``memory_frames`` kept besides the prompt): object cells are those
  of the propagated mask that the verifier also calls object; background cells (outside the mask
  grown by one cell, at most ``background_cells``) are a third each the nearest, the most alike
  (distractors) and cells spread evenly over the frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from pipeline.masks import mask_to_box
from pipeline.tracking.config import PresenceConfig
from pipeline.types import FeatureMap, Observation

Upsample = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class _Sample:
    """Labelled cells of one memory frame: features (n, C), labels (n,) 1 object / 0 background."""

    feats: np.ndarray
    labels: np.ndarray


@dataclass
class Verdict:
    """The verifier's word on an active track in one frame.

    Attributes:
        presence: Mean object probability of the propagated cells (the track's score).
        visible: Show the track in this frame.
        gone: Absent for ``absent_frames`` frames in a row: lose it.
        prob: (h, w) object probability of the search region's cells the verdict needed (the
            propagated cells, the re-anchored regions and their context; 0 elsewhere), or None.
        cells: (h, w) bool cells of the mask re-anchored on the memory (`anchor_cells`), or None
            when the propagated mask stands.
    """

    presence: float
    visible: bool
    gone: bool
    prob: np.ndarray | None = None
    cells: np.ndarray | None = None


@dataclass
class Candidate:
    """Where a lost object may have come back.

    Attributes:
        cells: (h, w) bool grid cells of the region.
        prob: (h, w) float32 object probability of every cell of the frame.
        score: Mean object probability over the region.
    """

    cells: np.ndarray
    prob: np.ndarray
    score: float


def _nearest_outside(fg: np.ndarray, n: int) -> np.ndarray:
    """Flat indices of the ``n`` cells nearest to ``fg`` outside it grown by one cell."""
    idx = np.flatnonzero(~ndimage.binary_dilation(fg, iterations=1))
    if len(idx) <= n:
        return idx
    dist = ndimage.distance_transform_edt(~fg).reshape(-1)[idx]
    return idx[np.argsort(dist, kind="stable")[:n]]


def _sample_cells(feats: np.ndarray, weights: np.ndarray, config: PresenceConfig) -> _Sample | None:
    """Object cells (weight >= 0.5, evenly subsampled) and background cells (outside the object
    grown by one cell) of one frame; None when no cell is object. The background holds, a third
    each, the cells nearest the object, the cells most like the object (its distractors: what a
    memory without them would take for it) and cells spread evenly over the rest of the frame."""
    fg = weights >= 0.5
    if not fg.any():
        return None
    flat = feats.reshape(-1, feats.shape[-1])
    fg_idx = np.flatnonzero(fg)
    if len(fg_idx) > config.object_cells:
        fg_idx = fg_idx[np.linspace(0, len(fg_idx) - 1, config.object_cells).round().astype(int)]
    bg_idx = np.flatnonzero(~ndimage.binary_dilation(fg, iterations=1))
    n = config.background_cells
    if len(bg_idx) > n:
        nearest = _nearest_outside(fg, n // 3)
        likeness = (flat[bg_idx] @ flat[fg_idx].T).max(axis=1)
        alike = bg_idx[np.argsort(-likeness, kind="stable")[: n // 3]]
        chosen = np.union1d(nearest, alike)
        rest = np.setdiff1d(bg_idx, chosen)
        spread = rest[np.linspace(0, len(rest) - 1, min(len(rest), n - len(chosen))).astype(int)]
        bg_idx = np.union1d(chosen, spread)
    idx = np.concatenate([fg_idx, bg_idx])
    labels = np.concatenate([np.ones(len(fg_idx)), np.zeros(len(bg_idx))]).astype(np.float32)
    return _Sample(np.ascontiguousarray(flat[idx], dtype=np.float32), labels)


@dataclass
class AppearanceMemory:
    """One object's labelled cells: the prompt frame's and a bounded deque of confident frames'."""

    config: PresenceConfig
    prompt: _Sample
    recent: deque = field(default_factory=deque)
    last_added: int = 0
    _keys: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_prompt(
        cls, config: PresenceConfig, features: FeatureMap, weights: np.ndarray, frame_index: int
    ) -> AppearanceMemory | None:
        sample = _sample_cells(features.grid, weights, config)
        if sample is None:
            return None
        return cls(config, sample, deque(maxlen=config.memory_frames), frame_index)

    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, C) features and (N,) labels of every memory cell."""
        if self._keys is None:
            samples = [self.prompt, *self.recent]
            self._keys = (
                np.concatenate([s.feats for s in samples]),
                np.concatenate([s.labels for s in samples]),
            )
        return self._keys

    def add(self, features: FeatureMap, weights: np.ndarray, frame_index: int) -> bool:
        """Add a confident frame's cells (at most one every ``memory_every`` frames)."""
        if self.config.memory_frames == 0:
            return False
        if frame_index - self.last_added < self.config.memory_every:
            return False
        sample = _sample_cells(features.grid, weights, self.config)
        if sample is None:
            return False
        self.recent.append(sample)
        self.last_added = frame_index
        self._keys = None
        return True

    def probability(self, queries: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """(n,) object probability of (n, C) unit query features by k-NN label transfer."""
        feats, labels = self.keys()
        keys = torch.from_numpy(feats).T  # torch's matmul beats numpy's at these sizes
        cfg = self.config
        k = min(cfg.topk, len(labels))
        out = np.empty(len(queries), np.float32)
        for s in range(0, len(queries), chunk):
            sims = torch.from_numpy(queries[s : s + chunk]) @ keys
            top, part = torch.topk(sims, k, dim=1)  # several times faster than argpartition
            w = np.exp((top.numpy() - top[:, :1].numpy()) / cfg.temperature)
            out[s : s + chunk] = (w * labels[part.numpy()]).sum(1) / w.sum(1)
        return out

    def state_dict(self) -> dict:
        pack = [{"feats": s.feats.astype(np.float16), "labels": s.labels} for s in self.recent]
        return {
            "prompt": {"feats": self.prompt.feats.astype(np.float16), "labels": self.prompt.labels},
            "recent": pack,
            "last_added": self.last_added,
        }

    @classmethod
    def from_state(cls, config: PresenceConfig, state: dict) -> AppearanceMemory:
        def unpack(d: dict) -> _Sample:
            return _Sample(np.asarray(d["feats"], np.float32), np.asarray(d["labels"], np.float32))

        recent = deque((unpack(d) for d in state["recent"]), maxlen=config.memory_frames)
        return cls(config, unpack(state["prompt"]), recent, int(state["last_added"]))


def anchor_cells(prob: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The cells of an active track re-anchored on its appearance memory: the connected regions
    where the verifier's object probability ``prob`` is at least 0.5 that hold some of the
    propagated cells (``weights`` > 0); None when there are none."""
    labels, n = ndimage.label(prob >= 0.5, structure=np.ones((3, 3), bool))
    if n == 0:
        return None
    keep = np.unique(labels[(weights > 0) & (labels > 0)])
    if len(keep) == 0:
        return None
    return np.isin(labels, keep)


def grid_mask(
    cells: np.ndarray,
    prob: np.ndarray,
    image: np.ndarray,
    upsample: Upsample,
    crop_margin: int = 2,
    min_area: int = 16,
) -> np.ndarray | None:
    """A full-size mask from grid cells and their object probability: the probability over the
    cells (grown by ``crop_margin``) brought to the image's size; None when under ``min_area``."""
    h, w = image.shape[:2]
    gh, gw = cells.shape
    ys, xs = np.nonzero(cells)
    cy0, cy1 = max(0, ys.min() - crop_margin), min(gh, ys.max() + 1 + crop_margin)
    cx0, cx1 = max(0, xs.min() - crop_margin), min(gw, xs.max() + 1 + crop_margin)
    part = cells[cy0:cy1, cx0:cx1]  # grown within its own bounds: the cost follows the object
    near = ndimage.binary_dilation(part, iterations=crop_margin) if crop_margin > 0 else part
    py0, py1 = round(cy0 * h / gh), min(h, round(cy1 * h / gh))
    px0, px1 = round(cx0 * w / gw), min(w, round(cx1 * w / gw))
    p = np.where(near, prob[cy0:cy1, cx0:cx1], 0.0).astype(np.float32)
    up = upsample(np.stack([1.0 - p, p]), image[py0:py1, px0:px1])
    mask = np.zeros((h, w), bool)
    mask[py0:py1, px0:px1] = crop = up[1] > up[0]
    return mask if int(crop.sum()) >= max(1, min_area) else None


class PresenceVerifier:
    """The appearance memories of a source's prompted tracks, their presence verdicts and the
    search for the lost ones.

    Args:
        config: The presence settings.
    """

    def __init__(self, config: PresenceConfig | None = None) -> None:
        self.config = config or PresenceConfig()
        self._memories: dict[int, AppearanceMemory] = {}
        self._absent: dict[int, int] = {}  # consecutive frames judged absent
        self._lost_at: dict[int, int] = {}
        self._sightings: dict[int, tuple[int, int, np.ndarray]] = {}  # frame, count, cells
        self._searched: dict[int, int] = {}  # the frame of a lost track's latest search
        self._area: dict[int, float] = {}  # running visible area in cells (momentum 0.9)

    def __contains__(self, track_id: int) -> bool:
        return track_id in self._memories

    def enrol(
        self, track_id: int, features: FeatureMap, weights: np.ndarray, frame_index: int
    ) -> None:
        """Start a track's memory from its prompt (``weights``: (h, w) object fraction per
        cell)."""
        if not self.config.verify:
            return
        memory = AppearanceMemory.from_prompt(self.config, features, weights, frame_index)
        if memory is not None:
            self._memories[track_id] = memory
            self._absent[track_id] = 0

    def forget(self, track_id: int) -> None:
        """Drop an ended track's memory."""
        self._memories.pop(track_id, None)
        self._absent.pop(track_id, None)
        self._lost_at.pop(track_id, None)
        self._sightings.pop(track_id, None)
        self._searched.pop(track_id, None)
        self._area.pop(track_id, None)

    def probability(self, track_id: int, features: FeatureMap, cells: np.ndarray) -> np.ndarray:
        """The object probability of some cells ((h, w) bool) of this frame, by the track's
        appearance memory."""
        return self._memories[track_id].probability(np.ascontiguousarray(features.grid[cells]))

    def judge(
        self,
        track_id: int,
        features: FeatureMap,
        weights: np.ndarray,
        frame_index: int,
        context: int = 2,
    ) -> Verdict:
        """One frame's verdict on an active track from its propagated cells (``weights``: (h, w)
        propagated probability where the object wins). The verifier looks at a local search
        region, the object's cells grown by ``search_margin`` times their extent (at least two
        cells); a confident frame joins the memory (only the cells the verifier calls object).

        The object probability is computed only where the verdict needs it, which is where the
        cost of verification lies (a k-NN against the whole memory per cell): the propagated
        cells and the cells within ``context`` of them, then, ``context`` rings at a time, the
        cells within ``context`` of those called object, until no new ones are called object.
        That finds the regions `anchor_cells` keeps exactly as over the whole region, with the
        ``context`` cells around them that `grid_mask` with ``crop_margin`` = ``context``
        reads, in few k-NN calls (one or two for an object that stays put)."""
        cfg = self.config
        memory = self._memories[track_id]
        on = weights > 0
        if not on.any():
            return self._absent_verdict(track_id, 0.0)
        ys, xs = np.nonzero(on)
        my = max(2, round(cfg.search_margin * (ys.max() - ys.min() + 1)))
        mx = max(2, round(cfg.search_margin * (xs.max() - xs.min() + 1)))
        h, w = weights.shape
        win = (
            slice(max(0, ys.min() - my), min(h, ys.max() + 1 + my)),
            slice(max(0, xs.min() - mx), min(w, xs.max() + 1 + mx)),
        )
        # everything below is on the search region's cells
        grid, near = features.grid[win], weights[win]
        on = near > 0
        prob = np.zeros(on.shape, np.float32)
        known = np.zeros(on.shape, bool)

        def fill(need: np.ndarray) -> bool:
            need = need & ~known
            if not need.any():
                return False
            prob[need] = memory.probability(np.ascontiguousarray(grid[need]))
            known[need] = True
            return True

        reach = max(1, context)
        square = np.ones((3, 3), bool)

        def around(seen: np.ndarray) -> np.ndarray:
            return ndimage.binary_dilation(seen, structure=square, iterations=reach)

        fill(around(on) if cfg.anchor else on)
        p = float((prob * near).sum() / near.sum())
        if p < cfg.present_above:
            return self._absent_verdict(track_id, p)
        cells = None
        if cfg.anchor:
            while fill(around(known & (prob >= 0.5))):
                pass
            cells = anchor_cells(prob, near)
        if cells is not None and on.sum() >= cfg.anchor_fine_cells:
            # a large object: what the verifier adds beyond the propagated cells' one-cell border
            # (border cells are half object); up to anchor_growth, the finer mask stands
            ring = ndimage.binary_dilation(on, structure=np.ones((3, 3), bool))
            if (cells & ~ring).sum() <= cfg.anchor_growth * on.sum():
                cells = None
        seen = float((on if cells is None else cells).sum())
        area = self._area.get(track_id)
        if area is not None and seen < cfg.hidden_below * area:
            return self._absent_verdict(track_id, p)  # mostly hidden (or out of the view)
        self._area[track_id] = seen if area is None else 0.9 * area + 0.1 * seen
        self._absent[track_id] = 0
        if p >= cfg.confident_above and frame_index - memory.last_added >= cfg.memory_every:
            # the propagated cells the verifier agrees with: never the anchored ones alone, or
            # the memory would learn from itself and drift
            agreed = np.zeros((h, w), np.float32)
            agreed[win] = np.where(prob >= 0.5, near, 0.0)
            memory.add(features, agreed, frame_index)
        full_prob = np.zeros((h, w), np.float32)
        full_cells = None
        if cells is not None:
            full_cells = np.zeros((h, w), bool)
            full_cells[win] = cells
        full_prob[win] = prob
        return Verdict(p, True, False, full_prob, full_cells)

    def _absent_verdict(self, track_id: int, p: float) -> Verdict:
        self._absent[track_id] = self._absent.get(track_id, 0) + 1
        return Verdict(p, False, self._absent[track_id] >= self.config.absent_frames)

    def mark_lost(self, track_id: int, frame_index: int) -> None:
        if track_id in self._memories:
            self._lost_at[track_id] = frame_index
            self._absent[track_id] = 0
            self._sightings.pop(track_id, None)
            self._searched.pop(track_id, None)

    def mark_recovered(self, track_id: int) -> None:
        self._lost_at.pop(track_id, None)
        self._sightings.pop(track_id, None)
        self._searched.pop(track_id, None)
        self._area.pop(track_id, None)

    def _searchable(self, track_id: int, frame_index: int) -> bool:
        """Whether a lost track is still looked for (it has a memory, within ``search_frames``)."""
        if track_id not in self._memories:
            return False
        since = self._lost_at.get(track_id, frame_index)
        limit = self.config.search_frames
        return limit is None or frame_index - since <= limit

    def search(self, track_id: int, features: FeatureMap, frame_index: int) -> Candidate | None:
        """Where a lost track's object is in this frame, if anywhere (module docstring)."""
        cfg = self.config
        if not self._searchable(track_id, frame_index):
            return None
        memory = self._memories[track_id]
        previous = self._searched.get(track_id)
        self._searched[track_id] = frame_index
        h, w = features.shape
        grid = features.grid.reshape(-1, features.grid.shape[-1])
        prob = memory.probability(grid).reshape(h, w)
        labels, n = ndimage.label(prob > 0.5, structure=np.ones((3, 3), bool))
        if n == 0:
            return None
        index = np.arange(1, n + 1)
        mass = ndimage.sum_labels(prob, labels, index)
        size = ndimage.sum_labels(np.ones_like(prob), labels, index)
        best = int(np.argmax(mass))
        score = float(mass[best] / size[best])
        if size[best] < cfg.min_cells or score < cfg.recover_above:
            return None
        cells = labels == best + 1
        if not self._sighted(track_id, previous, frame_index, cells):
            return None
        return Candidate(cells, prob, score)

    def _sighted(
        self, track_id: int, previous: int | None, frame_index: int, cells: np.ndarray
    ) -> bool:
        """Count a sighting of a lost track; True once ``confirm_frames`` searches in a row
        (``previous``: the frame of the one before this) saw it at overlapping places (the region
        grown by one cell meets the previous one)."""
        frame, count, before = self._sightings.get(track_id, (None, 0, cells))
        near = ndimage.binary_dilation(before, iterations=1)
        in_a_row = frame is not None and frame == previous and (near & cells).any()
        count = count + 1 if in_a_row else 1
        self._sightings[track_id] = (frame_index, count, cells)
        return count >= self.config.confirm_frames

    def reacquire(
        self,
        lost: list[int],
        frame_index: int,
        features: FeatureMap,
        image: np.ndarray,
        upsample: Upsample,
        labels: dict[int, str | None],
        crop_margin: int = 2,
        min_area: int = 16,
    ) -> list[Observation]:
        """Re-detections of the lost tracks this verifier knows, where `search` finds them: each
        a ``"redetection"`` observation ``for_track`` that track, its mask the object probability
        of the region brought to full size (``upsample``: (2, h', w') probabilities and the
        image crop -> (2, H', W')). At most ``searches_per_frame`` tracks are searched in a frame,
        those searched longest ago first, so each of many lost tracks is searched every few
        frames at a bounded cost per frame."""
        due = [t for t in lost if self._searchable(t, frame_index)]
        due.sort(key=lambda t: self._searched.get(t, -1))  # never searched first, then oldest
        if self.config.searches_per_frame is not None:
            due = due[: self.config.searches_per_frame]
        out = []
        for tid in due:
            found = self.search(tid, features, frame_index)
            if found is None:
                continue
            mask = grid_mask(found.cells, found.prob, image, upsample, crop_margin, min_area)
            if mask is not None:
                box = mask_to_box(mask, min_area)
                out.append(
                    Observation(
                        box, mask, found.score, labels.get(tid), "redetection", for_track=tid
                    )
                )
        return out

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "memories": {str(t): m.state_dict() for t, m in self._memories.items()},
            "absent": {str(t): n for t, n in self._absent.items()},
            "lost_at": {str(t): n for t, n in self._lost_at.items()},
            "area": {str(t): a for t, a in self._area.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self._memories = {
            int(t): AppearanceMemory.from_state(self.config, m)
            for t, m in state.get("memories", {}).items()
        }
        self._absent = {int(t): int(n) for t, n in state.get("absent", {}).items()}
        self._lost_at = {int(t): int(n) for t, n in state.get("lost_at", {}).items()}
        self._area = {int(t): float(a) for t, a in state.get("area", {}).items()}
