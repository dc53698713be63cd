"""Binary masks: COCO RLE encoding, boxes, IoU. The one place that talks to pycocotools."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def _span(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """First and past-the-last row and column of a mask's set pixels, or None if it is empty; the
    columns are looked for only within the rows it spans."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask[ys[0] : ys[-1] + 1].any(axis=0))
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def _run_lengths(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed counts of an (h, w) mask (column-major runs, zeros first), computed
    over its bounding rows and columns only, so the cost follows the object, not the frame."""
    h, w = mask.shape
    span = _span(mask)
    if span is None:
        return [h * w]
    r0, r1, c0, c1 = span
    padded = np.zeros((c1 - c0, r1 - r0 + 2), np.int8)  # each column of the crop, zero-framed
    padded[:, 1:-1] = mask[r0:r1, c0:c1].T
    step = np.diff(padded, axis=1)
    col, row = np.nonzero(step)  # in column-major order of the frame
    at = (col + c0) * h + row + r0
    rise = step[col, row] > 0
    starts, ends = at[rise], at[~rise]
    joined = np.flatnonzero(starts[1:] == ends[:-1])  # a run going on into the next column
    starts, ends = np.delete(starts, joined + 1), np.delete(ends, joined)
    edges = np.concatenate([[0], np.column_stack([starts, ends]).reshape(-1), [h * w]])
    counts = np.diff(edges)
    return (counts[:-1] if counts[-1] == 0 else counts).tolist()


def rle_encode(mask: np.ndarray) -> dict:
    """Encode an (h, w) boolean mask as COCO compressed RLE with a str ``counts``."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    h, w = (int(v) for v in mask.shape)
    rle = mask_utils.frPyObjects(
        {"size": [h, w], "counts": _run_lengths(mask.astype(bool, copy=False))}, h, w
    )
    return {"size": [h, w], "counts": rle["counts"].decode()}


def rle_decode(rle: dict) -> np.ndarray:
    """Decode COCO RLE (compressed str/bytes counts, or uncompressed list counts) to (h, w) bool."""
    counts = rle["counts"]
    h, w = (int(v) for v in rle["size"])
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        rle = {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts}
    return mask_utils.decode(rle).astype(bool)


def mask_to_box(mask: np.ndarray, min_area: int = 0) -> tuple[float, float, float, float] | None:
    """Tight (x0, y0, x1, y1) box of a mask, in pixel-edge coordinates, or None if empty.

    With ``min_area``, parts of the mask (8-connected) with fewer pixels are left out of the box
    when it has bigger ones: the specks an upsampling leaves around an object would stretch its
    box far past the object (as SAM's post-processing removes small disconnected regions)."""
    span = _span(mask)
    if span is None:
        return None
    r0, r1, c0, c1 = span
    if min_area > 1:
        from scipy import ndimage  # here: the control commands import this module, not scipy

        labels, n = ndimage.label(mask[r0:r1, c0:c1], structure=np.ones((3, 3), bool))
        if n > 1:
            sizes = np.bincount(labels.reshape(-1), minlength=n + 1)
            keep = sizes >= min_area
            keep[0] = False
            if keep.any():
                y0, y1, x0, x1 = _span(keep[labels])
                r0, r1, c0, c1 = r0 + y0, r0 + y1, c0 + x0, c0 + x1
    return float(c0), float(r0), float(c1), float(r1)


def box_to_mask(box: tuple[float, float, float, float], height: int, width: int) -> np.ndarray:
    """A filled box as an (h, w) bool mask, clipped to the image."""
    x0, y0, x1, y1 = box
    out = np.zeros((height, width), dtype=bool)
    c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    c1, r1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if c1 > c0 and r1 > r0:
        out[r0:r1, c0:c1] = True
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks of the same shape (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (N, 4) and b (M, 4) in xyxy; returns (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
