"""Edge-aware upsampling of patch-grid probabilities to full resolution (a fast guided filter).

Patch grids are coarse (one cell per 8-16 input pixels), so bilinear upsampling leaves blocky,
blurred mask edges. A guided filter (He et al., 2010) with the frame's intensity as guide makes the
output locally an affine function of the image, so probability edges snap to image edges. It is
built on ``cv2.boxFilter`` (cv2.ximgproc is not part of opencv-python) and runs in the "fast guided
filter" form: coefficients at a subsampled resolution, applied at full resolution.
"""

from __future__ import annotations

import cv2
import numpy as np


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def _resize(x: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    """cv2.resize for any channel count (cv2 handles at most 4 channels per call reliably)."""
    if x.ndim == 2 or x.shape[2] <= 4:
        out = cv2.resize(x, (width, height), interpolation=interpolation)
        return out if out.ndim == x.ndim else out[:, :, None]
    parts = [
        _resize(x[:, :, i : i + 4], width, height, interpolation) for i in range(0, x.shape[2], 4)
    ]
    return np.concatenate(parts, axis=2)


def cell_radius(
    grid_shape: tuple[int, ...], image_shape: tuple[int, ...], at_least: int = 8
) -> int:
    """A guided-filter radius for a grid's maps upsampled to an image: a patch grid's edges are
    uncertain by about one cell, so the window spans one cell in frame pixels, and at least
    ``at_least`` pixels."""
    (gh, gw), (height, width) = grid_shape, image_shape[:2]
    return max(at_least, round(max(height / gh, width / gw)))


def upsample_probs(
    probs: np.ndarray, image: np.ndarray, radius: int = 8, eps: float = 1e-3
) -> np.ndarray:
    """Upsample (K, h, w) probability maps to the (H, W) of ``image``, following its edges.

    Args:
        probs: (K, h, w) float32 maps on a patch grid that covers the whole image.
        image: HxWx3 uint8 RGB frame used as the guide.
        radius: Guided-filter window radius in full-resolution pixels; about the size of one
            patch cell in frame pixels works best (edges on the grid are uncertain by a cell).
        eps: Regularisation (guide intensities are in [0, 1]); larger is smoother, smaller
            follows image edges more closely.

    Returns:
        (K, H, W) float32 in [0, 1].
    """
    if probs.ndim != 3:
        raise ValueError(f"probs must be (K, h, w), got shape {probs.shape}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
    if radius < 1 or eps <= 0:
        raise ValueError(f"radius must be >= 1 and eps > 0, got radius={radius}, eps={eps}")
    k = probs.shape[0]
    height, width = image.shape[:2]
    if k == 0:
        return np.zeros((0, height, width), np.float32)
    guide = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    sub = max(1, radius // 2)
    lh, lw = max(1, round(height / sub)), max(1, round(width / sub))
    r = max(1, round(radius / sub))
    guide_low = cv2.resize(guide, (lw, lh), interpolation=cv2.INTER_AREA)[:, :, None]
    p_low = _resize(
        np.ascontiguousarray(probs.transpose(1, 2, 0), np.float32), lw, lh, cv2.INTER_LINEAR
    )
    mean_i = _box_channels(guide_low, r)
    mean_p = _box_channels(p_low, r)
    corr_ip = _box_channels(guide_low * p_low, r)
    var_i = _box_channels(guide_low * guide_low, r) - mean_i * mean_i
    a = (corr_ip - mean_i * mean_p) / (var_i + eps)
    b = mean_p - a * mean_i
    a = _resize(_box_channels(a, r), width, height, cv2.INTER_LINEAR)
    b = _resize(_box_channels(b, r), width, height, cv2.INTER_LINEAR)
    out = a * guide[:, :, None] + b
    np.clip(out, 0.0, 1.0, out=out)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def _box_channels(x: np.ndarray, radius: int) -> np.ndarray:
    """Box filter of an (h, w, K) array, keeping the channel axis for K = 1."""
    out = _box(np.ascontiguousarray(x), radius)
    return out if out.ndim == 3 else out[:, :, None]
