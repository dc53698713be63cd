"""Joining the tracks of consecutive chunks of one video into one continuous run.

Two chunks both process the overlap frames between them; a track of the later chunk takes the id
of the earlier chunk's track whose masks it overlaps most over those frames (mean mask IoU, one
Hungarian assignment), provided the overlap is at least ``min_iou``. Unmatched tracks get new ids,
never one used before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.masks import mask_iou
from pipeline.types import FrameResult


def _visible(results: Iterable[FrameResult]) -> dict[int, dict[int, np.ndarray]]:
    """frame index -> track id -> mask, for tracks with a mask."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for r in results:
        out[r.frame_index] = {t.id: t.mask_array() for t in r.tracks if t.mask is not None}
    return out


def match_ids(
    earlier: Sequence[FrameResult], later: Sequence[FrameResult], min_iou: float = 0.3
) -> dict[int, int]:
    """Map ids of ``later`` to ids of ``earlier`` by mean mask IoU over their common frames."""
    a, b = _visible(earlier), _visible(later)
    frames = sorted(set(a) & set(b))
    ids_a = sorted({i for f in frames for i in a[f]})
    ids_b = sorted({i for f in frames for i in b[f]})
    if not frames or not ids_a or not ids_b:
        return {}
    iou = np.zeros((len(ids_b), len(ids_a)))
    for f in frames:
        for bi, id_b in enumerate(ids_b):
            mb = b[f].get(id_b)
            for ai, id_a in enumerate(ids_a):
                ma = a[f].get(id_a)
                if mb is not None and ma is not None:
                    iou[bi, ai] += mask_iou(ma, mb)
    iou /= len(frames)
    rows, cols = linear_sum_assignment(-iou)
    return {ids_b[r]: ids_a[c] for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou}


class IdStitcher:
    """Gives every chunk's tracks their global ids, chunk after chunk."""

    def __init__(self) -> None:
        self.next_id = 1

    def mapping(
        self,
        chunk_ids: Iterable[int],
        matches: dict[int, int],
    ) -> dict[int, int]:
        """Global ids for a chunk's track ids: matched ones take their match (already global),
        the others new ids."""
        out: dict[int, int] = {}
        for tid in sorted(set(chunk_ids)):
            if tid in matches:
                out[tid] = matches[tid]
            else:
                out[tid] = self.next_id
                self.next_id += 1
        self.next_id = max([self.next_id, *(v + 1 for v in out.values())])
        return out
