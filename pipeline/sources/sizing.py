"""Output frame size (short-side resize, pixel cap) and display rotation."""

from __future__ import annotations

import logging

import numpy as np

from pipeline.sources.config import SourceConfig

log = logging.getLogger("dinotrack.sources")


def output_size(width: int, height: int, config: SourceConfig, name: str) -> tuple[int, int]:
    """The (width, height) frames of a ``width`` x ``height`` source are decoded to.

    Applies ``resize_short_side`` (downscale only, aspect kept), then ``max_pixels`` (downscale to
    fit, logged). Sizes are rounded to even numbers, as video scalers prefer.

    Args:
        width: Stored frame width.
        height: Stored frame height.
        config: Size settings.
        name: The source, for the log line.

    Raises:
        ValueError: When the size is not positive.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"{name!r} reports a frame size of {width}x{height}")
    scale = 1.0
    short = min(width, height)
    if config.resize_short_side is not None and short > config.resize_short_side:
        scale = config.resize_short_side / short
    if width * height * scale * scale > config.max_pixels:
        scale = (config.max_pixels / (width * height)) ** 0.5
        log.warning(
            "%r is %dx%d, above max_pixels=%d: downscaling by %.3f",
            name,
            width,
            height,
            config.max_pixels,
            scale,
        )
    if scale >= 1.0:
        return width, height
    w = max(2, int(width * scale) // 2 * 2)
    h = max(2, int(height * scale) // 2 * 2)
    return w, h


def rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, a multiple of 90) to an HxWx3 image."""
    turns = (rotation // 90) % 4
    if turns == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=turns))
