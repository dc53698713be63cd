"""A prompt's framing of its object: where the user's box lies relative to the box of the mask the
segmenter made from it, kept for the track's published boxes.

A box prompt frames the whole object, but the mask made from it may cover a part (patch features
at stride 8 split a 20-pixel pedestrian into torso and legs); the track then follows that part.
Its published box is the part's box with the prompt's offsets applied, each side's offset in units
of the mask box's width or height, so boxes keep the user's framing as the object moves and scales.
A segmenter whose masks fill the box (SAM) gives offsets near zero: the mask's box.
"""

from __future__ import annotations

Box = tuple[float, float, float, float]


def framing_offsets(framing: Box, mask_box: Box) -> Box:
    """(left, top, right, bottom) offsets of ``framing`` from ``mask_box``, in mask box units."""
    x0, y0, x1, y1 = mask_box
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    return ((framing[0] - x0) / w, (framing[1] - y0) / h, (framing[2] - x1) / w,
            (framing[3] - y1) / h)  # fmt: skip


def framed(box: Box, offsets: Box, image_size: tuple[int, int]) -> Box:
    """``box`` with the ``offsets`` of `framing_offsets` applied, clipped to the image."""
    x0, y0, x1, y1 = box
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    height, width = image_size
    return (
        min(max(x0 + offsets[0] * w, 0.0), width),
        min(max(y0 + offsets[1] * h, 0.0), height),
        min(max(x1 + offsets[2] * w, 0.0), width),
        min(max(y1 + offsets[3] * h, 0.0), height),
    )
