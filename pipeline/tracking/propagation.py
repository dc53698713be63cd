"""Label propagation over a bounded memory of patch features and soft masks.

The method of DINO's video label propagation (Caron et al., 2021, ``eval_video_segmentation.py``)
and Time-Tuning's feature forwarding: every patch of a new frame looks at the patches of the memory
frames within a spatial neighbourhood of radius ``r`` grid cells, keeps its ``topk`` most similar
ones (jointly over all memory frames), weighs them with a softmax of cosine similarity over a
temperature and averages their soft labels. The memory is explicit and bounded: the reference frames
(where objects were prompted, at most ``max_references``) plus the last ``memory_frames`` frames.

All objects travel together as channels of one label map (channel 0 = background), so one more
object adds one channel to a weighted average and nothing to the affinity.

Only the neighbourhood is computed, never the dense affinity: the query grid is cut into square
tiles of ``tile`` cells; a tile's queries are matched (one matrix product) against the memory cells
of the tile grown by ``r`` on every side, and cells outside each query's own (2r+1)^2 window are
excluded before the top-k. Tiles whose grown window holds no foreground in any memory frame are
pure background (every candidate label is background), so they are filled without computing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from pipeline.types import FeatureMap


class PropagationConfig(BaseModel):
    """How labels travel from the memory to a new frame (defaults measured on DAVIS-2016 dev with
    the fused stride-8 MobileNetV2 features; see docs/tracking.md).

    Attributes:
        memory_frames: Previous frames kept in memory besides the references (DINO: 7).
        max_references: Prompt frames kept as references (the first is the first prompt).
        topk: Memory patches each query patch keeps, jointly over all memory frames (DINO: 5).
        radius: Neighbourhood radius in grid cells; a query only looks at memory cells within
            this Chebyshev distance (DINO: 12).
        temperature: Softmax temperature over cosine similarities (DINO: 0.1).
        tile: Side in grid cells of the query tiles of the banded computation (speed only).
        skip_below: Tiles whose neighbourhood has no foreground probability above this in any
            memory frame are set to background without computing (speed only; 0 disables).
    """

    memory_frames: int = Field(7, ge=0)
    max_references: int = Field(4, ge=1)
    topk: int = Field(5, ge=1)
    radius: int = Field(18, ge=0)
    temperature: float = Field(0.1, gt=0)
    tile: int = Field(8, ge=1)
    skip_below: float = Field(1e-3, ge=0, lt=1)


@dataclass(eq=False)
class _Entry:
    """One memory frame: features (h, w, C), soft labels (h, w, K+1), and the array it came from."""

    feats: torch.Tensor
    labels: torch.Tensor
    source: np.ndarray | None = None


def downsample_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An (H, W) bool/float mask as the fraction of each grid cell it covers, (h, w) float32."""
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {m.shape}")
    h, w = shape
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).clip(0.0, 1.0)


class LabelPropagator:
    """Propagates the soft masks of several objects from frame to frame.

    Args:
        config: The propagation settings.
    """

    def __init__(self, config: PropagationConfig | None = None) -> None:
        self.config = config or PropagationConfig()
        self._ids: list[int] = []
        self._refs: deque[_Entry] = deque()
        self._recent: deque[_Entry] = deque(maxlen=self.config.memory_frames)
        self._outside_cache: dict[tuple[int, ...], torch.Tensor] = {}

    # -- objects ----------------------------------------------------------------------------
    @property
    def object_ids(self) -> list[int]:
        """Object ids in channel order (channel i + 1 holds object_ids[i])."""
        return list(self._ids)

    @property
    def memory_length(self) -> int:
        """Frames held in memory (references plus recent frames)."""
        return len(self._refs) + len(self._recent)

    def add_objects(self, features: FeatureMap, masks: Mapping[int, np.ndarray]) -> None:
        """Add objects whose masks are known in the frame of ``features`` (their prompt frame).

        The frame becomes a reference. When objects already exist and that frame is not the newest
        memory entry (``step`` was not called with these features), it is propagated first so that
        the existing objects keep their labels in the reference. The older memory frames did not
        know the new objects, and would vote "background" wherever they look like them; so the new
        objects' labels are propagated from the prompt frame back into every older memory frame
        (taking their share from that frame's background).

        Args:
            features: Features of the frame the masks belong to.
            masks: object id -> (H, W) bool mask at any resolution (area-averaged to the grid).
        """
        if not masks:
            return
        dup = [i for i in masks if i in self._ids]
        if dup:
            raise ValueError(f"objects {dup} are already tracked; use correct() to change masks")
        h, w = features.shape
        if self._ids and not self._is_newest(features):
            self.step(features)
        n_old = len(self._ids) + 1
        entry = self._newest() if self._is_newest(features) else None
        if entry is None:
            feats = torch.from_numpy(np.ascontiguousarray(features.grid, dtype=np.float32))
            self._check_shape(feats)
            labels = torch.zeros(h, w, n_old)
            labels[..., 0] = 1.0
            entry = _Entry(feats, labels, features.grid)
        self._ids.extend(int(i) for i in masks)
        older = [e for e in (*self._refs, *self._recent) if e is not entry]
        for e in (entry, *older):
            e.labels = F.pad(e.labels, (0, len(self._ids) + 1 - e.labels.shape[-1]))
        for oid, mask in masks.items():
            self._write(entry.labels, self._ids.index(oid) + 1, downsample_mask(mask, (h, w)))
        self._backfill(entry, older, n_old)
        if entry in self._recent:
            self._recent.remove(entry)
        if entry not in self._refs:
            self._refs.append(entry)
        while len(self._refs) > self.config.max_references:
            self._refs.popleft()

    @torch.no_grad()
    def _backfill(self, source: _Entry, targets: list[_Entry], first: int) -> None:
        """Propagate channels ``first:`` of ``source`` into the background of ``targets``."""
        if not targets:
            return
        new = source.labels[..., first:]
        probe = _Entry(source.feats, torch.cat([1.0 - new.sum(-1, keepdim=True), new], -1))
        for e in targets:
            p = self._propagate(e.feats, [probe])[..., 1:]
            bg = e.labels[..., :1].clone()
            e.labels[..., first:] = bg * p
            e.labels[..., 0] = bg[..., 0] * (1.0 - p.sum(-1))

    def remove_objects(self, ids: Iterable[int]) -> None:
        """Stop propagating these objects (their mass goes to background); unknown ids are
        ignored."""
        drop = [self._ids.index(i) + 1 for i in ids if i in self._ids]
        if not drop:
            return
        keep = [c for c in range(len(self._ids) + 1) if c not in drop]
        self._ids = [self._ids[c - 1] for c in keep[1:]]
        if not self._ids:
            self._refs.clear()
            self._recent.clear()
            return
        for entry in (*self._refs, *self._recent):
            removed = entry.labels[..., drop].sum(-1)
            entry.labels = entry.labels[..., keep].contiguous()
            entry.labels[..., 0] += removed
        # A reference that no longer holds any object is of no use.
        self._refs = deque(e for e in self._refs if float(e.labels[..., 1:].max()) > 0.5)

    def correct(self, masks: Mapping[int, np.ndarray]) -> None:
        """Overwrite the newest memory entry for some objects (e.g. after SAM refinement or
        re-identification); the other channels are rescaled so each cell still sums to one."""
        if not masks:
            return
        entry = self._newest()
        if entry is None:
            raise ValueError(
                "correct() needs a frame in memory: call step() or add_objects() first"
            )
        unknown = [i for i in masks if i not in self._ids]
        if unknown:
            raise ValueError(
                f"cannot correct unknown objects {unknown}; add them with add_objects()"
            )
        shape = tuple(entry.labels.shape[:2])
        for oid, mask in masks.items():
            self._write(entry.labels, self._ids.index(oid) + 1, downsample_mask(mask, shape))

    # -- propagation ------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, features: FeatureMap) -> np.ndarray:
        """Propagate to a new frame and push it into memory.

        Returns:
            (K+1, h, w) float32 probabilities on the feature grid (channel 0 = background).
        """
        h, w = features.shape
        if not self._ids:
            return np.ones((1, h, w), np.float32)
        feats = torch.from_numpy(np.ascontiguousarray(features.grid, dtype=np.float32))
        self._check_shape(feats)
        memory = [*self._refs, *self._recent]
        probs = self._propagate(feats, memory)
        if self.config.memory_frames > 0:
            self._recent.append(_Entry(feats, probs, features.grid))
        return probs.permute(2, 0, 1).numpy().copy()

    def _propagate(self, query: torch.Tensor, memory: list[_Entry]) -> torch.Tensor:
        """(h, w, K+1) soft labels of ``query`` (h, w, C) from the memory entries."""
        cfg = self.config
        h, w, c = query.shape
        n_ch = memory[0].labels.shape[-1]
        r, t, m = cfg.radius, cfg.tile, len(memory)
        mem_f = torch.stack([e.feats for e in memory])  # (m, h, w, C)
        mem_l = torch.stack([e.labels for e in memory])  # (m, h, w, K+1)
        active = torch.ones(h, w, dtype=torch.bool)
        if cfg.skip_below > 0:  # query cells with foreground somewhere in their window
            fg = (mem_l[..., 1:].amax(dim=(0, 3)) > cfg.skip_below).float()[None, None]
            active = F.max_pool2d(fg, 2 * r + 1, stride=1, padding=r)[0, 0] > 0
        out = torch.zeros(h, w, n_ch)
        out[..., 0] = 1.0
        for y0 in range(0, h, t):
            y1 = min(h, y0 + t)
            ry0, ry1 = max(0, y0 - r), min(h, y1 + r)
            for x0 in range(0, w, t):
                x1 = min(w, x0 + t)
                if not bool(active[y0:y1, x0:x1].any()):
                    continue  # every candidate label is background
                rx0, rx1 = max(0, x0 - r), min(w, x1 + r)
                n_q, n_r = (y1 - y0) * (x1 - x0), (ry1 - ry0) * (rx1 - rx0)
                qt = query[y0:y1, x0:x1].reshape(n_q, c)
                kf = mem_f[:, ry0:ry1, rx0:rx1].reshape(m * n_r, c)
                aff = torch.matmul(qt, kf.T)  # (queries, m * region)
                outside = self._outside(
                    (y0 - ry0, y1 - y0, ry1 - ry0), (x0 - rx0, x1 - x0, rx1 - rx0)
                )
                aff.view(n_q, m, n_r).masked_fill_(outside[:, None, :], float("-inf"))
                vals, idx = torch.topk(aff, min(cfg.topk, m * n_r), dim=1)
                wts = torch.softmax(vals / cfg.temperature, dim=1)
                lab = mem_l[:, ry0:ry1, rx0:rx1].reshape(m * n_r, n_ch)
                res = torch.einsum("qk,qkc->qc", wts, lab[idx])
                out[y0:y1, x0:x1] = res.reshape(y1 - y0, x1 - x0, n_ch)
        return out

    def _outside(self, ys: tuple[int, int, int], xs: tuple[int, int, int]) -> torch.Tensor:
        """(queries, region) mask of the region cells outside each query's (2r+1)^2 window, for a
        tile at offset ``off`` of ``n`` cells inside a region of ``size`` cells, per axis."""
        key = (*ys, *xs)
        if key not in self._outside_cache:
            r = self.config.radius

            def inside(off: int, n: int, size: int) -> torch.Tensor:  # (n, size)
                return (torch.arange(size)[None, :] - (torch.arange(n)[:, None] + off)).abs() <= r

            iy, ix = inside(*ys), inside(*xs)
            both = iy[:, None, :, None] & ix[None, :, None, :]  # (ny, nx, sy, sx)
            self._outside_cache[key] = ~both.reshape(ys[1] * xs[1], ys[2] * xs[2])
        return self._outside_cache[key]

    # -- helpers ----------------------------------------------------------------------------
    def _newest(self) -> _Entry | None:
        if self._recent:
            return self._recent[-1]
        return self._refs[-1] if self._refs else None

    def _is_newest(self, features: FeatureMap) -> bool:
        entry = self._newest()
        return entry is not None and entry.source is features.grid

    def _check_shape(self, feats: torch.Tensor) -> None:
        entry = self._newest()
        if entry is not None and entry.feats.shape != feats.shape:
            raise ValueError(
                f"feature grid {tuple(feats.shape)} differs from the memory's "
                f"{tuple(entry.feats.shape)}: keep the backbone and input size fixed for a source, "
                "or start a new propagator"
            )

    @staticmethod
    def _write(labels: torch.Tensor, ch: int, mask: np.ndarray) -> None:
        m = torch.from_numpy(mask)
        others = labels.clone()
        others[..., ch] = 0.0
        rest = others.sum(-1, keepdim=True)
        scale = torch.where(rest > 0, (1.0 - m).unsqueeze(-1) / rest.clamp_min(1e-12), 0.0)
        labels.copy_(others * scale)
        labels[..., ch] = m
        # cells with no other mass at all give theirs to background
        labels[..., 0] += torch.where(rest[..., 0] > 0, 0.0, 1.0 - m)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume, as numpy arrays and plain Python values."""

        def pack(entries: Iterable[_Entry]) -> list[dict[str, np.ndarray]]:
            return [
                {"feats": e.feats.numpy().astype(np.float16), "labels": e.labels.numpy().copy()}
                for e in entries
            ]

        return {
            "object_ids": list(self._ids),
            "references": pack(self._refs),
            "recent": pack(self._recent),
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore what `state_dict` returned."""

        def unpack(items: Iterable[Mapping]) -> list[_Entry]:
            return [
                _Entry(
                    torch.from_numpy(np.asarray(d["feats"], dtype=np.float32).copy()),
                    torch.from_numpy(np.asarray(d["labels"], dtype=np.float32).copy()),
                )
                for d in items
            ]

        self._ids = [int(i) for i in state["object_ids"]]
        self._refs = deque(unpack(state["references"]))
        self._recent = deque(unpack(state["recent"]), maxlen=self.config.memory_frames)
