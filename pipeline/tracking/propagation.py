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

The neighbourhood can be foveated (``fine_radius`` < ``radius``): within ``fine_radius`` cells a
query sees every memory cell; farther out, up to ``radius``, it sees the memory at half resolution
(2x2 cells averaged, features renormalised, labels averaged). Fast objects keep their reach while
the candidates per query fall from (2r+1)^2 to about (2 r_f+1)^2 + (r+1)^2 per memory frame.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.masks import mask_to_box
from pipeline.tracking.config import PropagationConfig
from pipeline.types import FeatureMap


class ObjectRegistry:
    """Object ids and their channels in the label maps: channel 0 is background, channel
    ``i + 1`` holds the i-th object in the order objects were added (removal closes the gap)."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._ids: list[int] = [int(i) for i in ids]

    @property
    def ids(self) -> list[int]:
        """Object ids in channel order."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._ids

    @property
    def channels(self) -> int:
        """Channels of a label map: background plus one per object."""
        return len(self._ids) + 1

    def channel(self, object_id: int) -> int:
        """The channel of a registered object."""
        return self._ids.index(object_id) + 1

    def add(self, ids: Iterable[int]) -> None:
        """Register objects; they take the next channels."""
        self._ids.extend(int(i) for i in ids)

    def remove(self, ids: Iterable[int]) -> list[int]:
        """Unregister the known objects among ``ids``; returns the channels they held (in the
        old numbering; the channels after them move down)."""
        drop = [self.channel(i) for i in ids if i in self._ids]
        dropped = set(drop)
        self._ids = [oid for c, oid in enumerate(self._ids, start=1) if c not in dropped]
        return drop


@dataclass(eq=False)
class _Entry:
    """One memory frame: features (h, w, C), soft labels (h, w, K+1), and the array it came from."""

    feats: torch.Tensor
    labels: torch.Tensor
    source: np.ndarray | None = None
    coarse: torch.Tensor | None = None  # feats at half resolution, computed when first needed

    def coarse_feats(self) -> torch.Tensor:
        """(ceil(h/2), ceil(w/2), C) 2x2-averaged features, renormalised."""
        if self.coarse is None:
            self.coarse = F.normalize(_pool2(self.feats), dim=-1)
        return self.coarse


_CHILD_DY = torch.tensor([0, 0, 1, 1])  # the four cells of a 2x2 block
_CHILD_DX = torch.tensor([0, 1, 0, 1])


@dataclass
class _Level:
    """The memory seen at one resolution: cells of ``scale`` grid cells, within ``reach``.

    feats (m, h', w', C) and labels (m, h', w', K+1) of all memory frames.
    """

    scale: int
    feats: torch.Tensor
    labels: torch.Tensor
    reach: int


def _pool2(grid: torch.Tensor) -> torch.Tensor:
    """(..., h, w, C) -> (..., ceil(h/2), ceil(w/2), C): the mean of each 2x2 block of cells."""
    lead = grid.shape[:-3]
    x = grid.reshape(-1, *grid.shape[-3:]).permute(0, 3, 1, 2)
    x = F.avg_pool2d(x, 2, ceil_mode=True).permute(0, 2, 3, 1)
    return x.reshape(*lead, *x.shape[1:]).contiguous()


def _axis_window(
    q0: int, nq: int, nj: int, scale: int, reach: int, fine: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query row (or column) q0..q0+nq-1, counted from the region's first cell, and memory
    cell 0..nj-1 of size ``scale`` (in query cells): whether the cell's centre is within ``reach``
    and whether the whole cell is within ``fine`` of the query. Both (nq, nj) bool."""
    q = torch.arange(q0, q0 + nq, dtype=torch.float32)[:, None]
    first = (torch.arange(nj, dtype=torch.float32) * scale)[None, :]
    centre = (first + (scale - 1) / 2 - q).abs() <= reach
    covered = torch.maximum((first - q).abs(), (first + scale - 1 - q).abs()) <= fine
    return centre, covered


def _region(q0: int, q1: int, scale: int, reach: int, size: int) -> tuple[int, int]:
    """Memory cells (of ``scale`` query cells, ``size`` of them) whose centre can be within
    ``reach`` of a query in q0..q1-1: [first, last + 1)."""
    lo = math.ceil((q0 - reach - (scale - 1) / 2) / scale)
    hi = math.floor((q1 - 1 + reach - (scale - 1) / 2) / scale) + 1
    return max(0, lo), min(size, hi)


def _region_cell(
    idx: torch.Tensor, region: tuple[tuple[int, int], tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Memory frame, row and column of the cells that `LabelPropagator._affinity`'s columns
    ``idx`` name (its columns run over the memory frames, then the region's rows and columns)."""
    (gy0, gy1), (gx0, gx1) = region
    n_r, nx = (gy1 - gy0) * (gx1 - gx0), gx1 - gx0
    frame, cell = torch.div(idx, n_r, rounding_mode="floor"), idx % n_r
    return frame, torch.div(cell, nx, rounding_mode="floor") + gy0, cell % nx + gx0


@functools.lru_cache(maxsize=32)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32: the share of output cell i's span that input pixel j covers (cell i
    spans [i, i + 1) * n_in / n_out pixels); each row sums to one."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    pixels = np.arange(n_in + 1)
    lo = np.maximum(edges[:-1, None], pixels[None, :-1])
    hi = np.minimum(edges[1:, None], pixels[None, 1:])
    return (np.clip(hi - lo, 0.0, None) * (n_out / n_in)).astype(np.float32)


def downsample_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An (H, W) bool/float mask as the fraction of each grid cell it covers, (h, w) float32.
    Area averaging over the mask's bounding rows and columns only, so an object's cost follows
    its size, not the frame's."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {m.shape}")
    h, w = shape
    box = mask_to_box(m)
    if box is None:
        return np.zeros((h, w), np.float32)
    c0, r0, c1, r1 = (int(v) for v in box)
    ay = _area_weights(m.shape[0], h)[:, r0:r1]
    ax = _area_weights(m.shape[1], w)[:, c0:c1]
    return (ay @ m[r0:r1, c0:c1].astype(np.float32) @ ax.T).clip(0.0, 1.0)


class LabelPropagator:
    """Propagates the soft masks of several objects from frame to frame.

    Args:
        config: The propagation settings.
    """

    def __init__(self, config: PropagationConfig | None = None) -> None:
        self.config = config or PropagationConfig()
        self._objects = ObjectRegistry()
        self._refs: deque[_Entry] = deque()
        self._recent: deque[_Entry] = deque(maxlen=self.config.memory_frames)
        self._outside_cache: dict[tuple[int, ...], torch.Tensor] = {}

    # -- objects ----------------------------------------------------------------------------
    @property
    def object_ids(self) -> list[int]:
        """Object ids in channel order (channel i + 1 holds object_ids[i])."""
        return self._objects.ids

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
        dup = [i for i in masks if i in self._objects]
        if dup:
            raise ValueError(f"objects {dup} are already tracked; use correct() to change masks")
        h, w = features.shape
        if self._objects and not self._is_newest(features):
            self.step(features)
        n_old = self._objects.channels
        entry = self._newest() if self._is_newest(features) else None
        if entry is None:
            feats = torch.from_numpy(np.ascontiguousarray(features.grid, dtype=np.float32))
            self._check_shape(feats)
            labels = torch.zeros(h, w, n_old)
            labels[..., 0] = 1.0
            entry = _Entry(feats, labels, features.grid)
        self._objects.add(masks)
        older = [e for e in (*self._refs, *self._recent) if e is not entry]
        for e in (entry, *older):
            e.labels = F.pad(e.labels, (0, self._objects.channels - e.labels.shape[-1]))
        for oid, mask in masks.items():
            self._write(entry.labels, self._objects.channel(oid), downsample_mask(mask, (h, w)))
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
        n_channels = self._objects.channels
        drop = self._objects.remove(ids)
        if not drop:
            return
        keep = [c for c in range(n_channels) if c not in drop]
        if not self._objects:
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
        unknown = [i for i in masks if i not in self._objects]
        if unknown:
            raise ValueError(
                f"cannot correct unknown objects {unknown}; add them with add_objects()"
            )
        shape = tuple(entry.labels.shape[:2])
        for oid, mask in masks.items():
            self._write(entry.labels, self._objects.channel(oid), downsample_mask(mask, shape))

    # -- propagation ------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, features: FeatureMap) -> np.ndarray:
        """Propagate to a new frame and push it into memory.

        Returns:
            (K+1, h, w) float32 probabilities on the feature grid (channel 0 = background).
        """
        h, w = features.shape
        if not self._objects:
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
        r = cfg.radius
        rf = r if cfg.fine_radius is None else min(cfg.fine_radius, r)
        feats, labels = (torch.stack([getattr(e, k) for e in memory]) for k in ("feats", "labels"))
        levels = [_Level(1, feats, labels, rf)]
        if rf == r:
            return self._banded(query, levels, r)
        coarse = _Level(
            2, torch.stack([e.coarse_feats() for e in memory]), _pool2(levels[0].labels), r
        )
        levels.append(coarse)
        if cfg.coarse_sure is None:
            return self._banded(query, levels, r)
        # Half-resolution propagation first; only tiles it is unsure of are computed in full.
        h, w = query.shape[:2]
        half = _Level(1, coarse.feats, coarse.labels, math.ceil(r / 2))
        first = self._banded(F.normalize(_pool2(query), dim=-1), [half], half.reach)
        first = first.repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w].contiguous()
        unsure = (first.amax(-1) < cfg.coarse_sure).float()[None, None]
        unsure = F.max_pool2d(unsure, 3, stride=1, padding=1)[0, 0] > 0
        return self._banded(query, levels, r, first, unsure)

    def _banded(
        self,
        query: torch.Tensor,
        levels: list[_Level],
        reach: int,
        out: torch.Tensor | None = None,
        todo: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Banded top-k propagation of ``query`` (h, w, C) from memory seen at ``levels``; tiles
        with no ``todo`` cell (default: all) keep ``out`` (default: background)."""
        cfg = self.config
        h, w, c = query.shape
        full = levels[0]
        n_ch, t = full.labels.shape[-1], cfg.tile
        if out is None:
            out = torch.zeros(h, w, n_ch)
            out[..., 0] = 1.0
        todo = torch.ones(h, w, dtype=torch.bool) if todo is None else todo
        if cfg.skip_below > 0:  # query cells with foreground somewhere in their window
            fg = (full.labels[..., 1:].amax(dim=(0, 3)) > cfg.skip_below).float()[None, None]
            active = F.max_pool2d(fg, 2 * reach + 1, stride=1, padding=reach)[0, 0] > 0
            out[~active] = out.new_tensor([1.0] + [0.0] * (n_ch - 1))
            todo = todo & active  # elsewhere every candidate label is background
        for y0 in range(0, h, t):
            y1 = min(h, y0 + t)
            for x0 in range(0, w, t):
                x1 = min(w, x0 + t)
                if not bool(todo[y0:y1, x0:x1].any()):
                    continue
                n_q = (y1 - y0) * (x1 - x0)
                qt = query[y0:y1, x0:x1].reshape(n_q, c)
                full_r = _region(y0, y1, 1, full.reach, h), _region(x0, x1, 1, full.reach, w)
                aff = self._affinity(qt, (y0, y1, x0, x1), full, full_r, full.reach)
                k = min(cfg.topk, aff.shape[1])
                vals, idx = torch.topk(aff, k, dim=1)
                frame, cy, cx = _region_cell(idx, full_r)
                cells = (frame * h + cy) * w + cx  # rows of the flattened labels, (queries, k)
                if len(levels) > 1:  # the best far matches, at full resolution
                    far_vals, far_cells = self._far_matches(qt, (y0, y1, x0, x1), levels)
                    vals, pick = torch.topk(torch.cat([vals, far_vals], 1), k, dim=1)
                    cells = torch.cat([cells, far_cells], 1).gather(1, pick)
                # labels of the k chosen cells only: the cost of K objects is paid once per pick
                labs = full.labels.view(-1, n_ch).index_select(0, cells.reshape(-1))
                labs = labs.view(*cells.shape, n_ch)  # (queries, k, K+1)
                wts = torch.softmax(vals / cfg.temperature, dim=1)
                res = torch.einsum("qk,qkc->qc", wts, labs)
                out[y0:y1, x0:x1] = res.reshape(y1 - y0, x1 - x0, n_ch)
        return out

    def _affinity(
        self,
        qt: torch.Tensor,
        tile: tuple[int, int, int, int],
        lv: _Level,
        region: tuple[tuple[int, int], tuple[int, int]],
        fine: int,
    ) -> torch.Tensor:
        """Cosine similarities (queries, m * cells) of a tile's queries to the memory cells of
        ``region`` at level ``lv``, -inf outside each query's window."""
        (y0, y1, x0, x1), ((gy0, gy1), (gx0, gx1)) = tile, region
        m, c = lv.feats.shape[0], lv.feats.shape[-1]
        n_q, n_r = qt.shape[0], (gy1 - gy0) * (gx1 - gx0)
        feats = lv.feats[:, gy0:gy1, gx0:gx1]
        aff = torch.matmul(qt, feats.reshape(m * n_r, c).T)
        outside = self._outside(
            (y0, y1 - y0, gy0, gy1 - gy0), (x0, x1 - x0, gx0, gx1 - gx0), lv.scale, lv.reach, fine
        )
        aff.view(n_q, m, n_r).masked_fill_(outside[:, None, :], float("-inf"))
        return aff

    def _far_matches(
        self, qt: torch.Tensor, tile: tuple[int, int, int, int], levels: list[_Level]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``topk`` best half-resolution matches of each query beyond the full-resolution
        window, each replaced by its four full-resolution cells (those outside that window):
        similarities (queries, 4 topk) and those cells' rows in the flattened full-resolution
        labels (queries, 4 topk)."""
        full, half = levels
        (y0, y1, x0, x1), (h, w) = tile, full.feats.shape[1:3]
        region = (
            _region(y0, y1, 2, half.reach, half.feats.shape[1]),
            _region(x0, x1, 2, half.reach, half.feats.shape[2]),
        )
        aff = self._affinity(qt, tile, half, region, full.reach)
        vals, idx = torch.topk(aff, min(self.config.topk, aff.shape[1]), dim=1)
        frame, cy, cx = _region_cell(idx, region)
        fy = 2 * cy[..., None] + _CHILD_DY  # (queries, k, 4)
        fx = 2 * cx[..., None] + _CHILD_DX
        qy = torch.arange(y0, y1).repeat_interleave(x1 - x0)[:, None, None]
        qx = torch.arange(x0, x1).repeat(y1 - y0)[:, None, None]
        near = ((fy - qy).abs() <= full.reach) & ((fx - qx).abs() <= full.reach)
        valid = (fy < h) & (fx < w) & ~near & torch.isfinite(vals)[..., None]
        flat = ((frame[..., None] * h + fy.clamp(max=h - 1)) * w + fx.clamp(max=w - 1)).reshape(-1)
        n_q = qt.shape[0]
        feats = full.feats.view(-1, qt.shape[1]).index_select(0, flat).view(n_q, -1, qt.shape[1])
        sims = torch.bmm(feats, qt[:, :, None])[..., 0].masked_fill_(
            ~valid.view(n_q, -1), -torch.inf
        )
        return sims, flat.view(n_q, -1)

    def _outside(
        self,
        ys: tuple[int, int, int, int],
        xs: tuple[int, int, int, int],
        scale: int,
        reach: int,
        fine: int,
    ) -> torch.Tensor:
        """(queries, region) mask of the memory cells a tile's queries must not see: farther than
        ``reach`` from the query, or (cells of ``scale`` > 1) wholly within ``fine`` of it, where
        the full-resolution level sees them. ``ys``/``xs``: the tile's first query and count, the
        region's first cell and count, per axis."""
        # Only the query's offset from the region matters, not where the tile is.
        key = (ys[0] - scale * ys[2], *ys[1::2], xs[0] - scale * xs[2], *xs[1::2])
        key = (*key, scale, reach, fine)
        if key not in self._outside_cache:
            (cy, vy), (cx, vx) = (
                _axis_window(k[0] - scale * k[2], k[1], k[3], scale, reach, fine) for k in (ys, xs)
            )
            seen = cy[:, None, :, None] & cx[None, :, None, :]  # (ny, nx, sy, sx)
            if scale > 1:
                seen &= ~(vy[:, None, :, None] & vx[None, :, None, :])
            self._outside_cache[key] = ~seen.reshape(ys[1] * xs[1], ys[3] * xs[3])
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
        # only the cells the object holds before or after change (elsewhere it is 0 either way
        # and the other channels already sum to one), so one object's cost follows its size
        m = torch.from_numpy(mask)
        rows, cols = torch.nonzero((m > 0) | (labels[..., ch] > 0), as_tuple=True)
        if len(rows) == 0:
            return
        span = (
            slice(int(rows.min()), int(rows.max()) + 1),
            slice(int(cols.min()), int(cols.max()) + 1),
        )
        labels, m = labels[span], m[span]  # views: written in place
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
            "object_ids": self._objects.ids,
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

        self._objects = ObjectRegistry(state["object_ids"])
        self._refs = deque(unpack(state["references"]))
        self._recent = deque(unpack(state["recent"]), maxlen=self.config.memory_frames)
