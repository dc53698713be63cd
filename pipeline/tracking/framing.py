"""A box prompt's framing of its object, kept in the track's published boxes.

A box prompt frames the whole object, but the mask made from it may cover a part (patch features
at stride 8 split a 20-pixel pedestrian into torso and legs), and a mask followed for long loses
parts that move (a runner's legs). A box-prompted track therefore publishes its mask's box grown
(never shrunk) to the prompt box's aspect ratio: the missing height (or width) is added on the
sides where the prompt box reached past its mask, in the same shares (evenly when it did not).
A mask that covers the object, as SAM's do, already has the prompt's aspect: its box is published.

Where the prompt's box and its mask say nothing (a box prompt whose mask is the box itself: its
overhang is the grid's rounding), the object does: `Framing.lean` puts the growth where the
object's appearance continues past the mask (the part a mask loses, a runner's legs, still looks
more like the object than the grass above its head does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Framing:
    """The prompt box's aspect ratio (width / height) and, for each axis, the share of the prompt
    box's overhang past its mask's box that lies before the mask (left of it, above it)."""

    aspect: float
    left_share: float
    top_share: float

    @classmethod
    def of(cls, prompt_box: Box, mask_box: Box) -> Framing:
        px0, py0, px1, py1 = prompt_box
        mx0, my0, mx1, my1 = mask_box

        def share(before: float, after: float) -> float:
            before, after = max(before, 0.0), max(after, 0.0)
            return before / (before + after) if before + after > 0 else 0.5

        aspect = max(px1 - px0, 1.0) / max(py1 - py0, 1.0)
        return cls(aspect, share(mx0 - px0, px1 - mx1), share(my0 - py0, py1 - my1))

    def growth(self, box: Box) -> tuple[int, float]:
        """The axis (0: height, 1: width) ``box`` misses to have the prompt's aspect ratio, and
        by how many pixels."""
        x0, y0, x1, y1 = box
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        if w / h > self.aspect:  # too wide for the prompt's shape: height is missing
            return 0, w / self.aspect - h
        return 1, h * self.aspect - w

    def apply(self, box: Box, image_size: tuple[int, int], share: float | None = None) -> Box:
        """``box`` grown to the framing's aspect ratio, clipped to the image; ``share``: the
        part of the growth that goes before the box (above it, left of it) in place of the
        prompt's."""
        x0, y0, x1, y1 = box
        axis, grow = self.growth(box)
        if axis == 0:
            share = self.top_share if share is None else share
            y0, y1 = y0 - grow * share, y1 + grow * (1 - share)
        else:
            share = self.left_share if share is None else share
            x0, x1 = x0 - grow * share, x1 + grow * (1 - share)
        height, width = image_size
        return (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                min(max(x1, 0.0), width), min(max(y1, 0.0), height))  # fmt: skip

    def lean(
        self,
        box: Box,
        grid_shape: tuple[int, int],
        image_size: tuple[int, int],
        probability: Callable[[np.ndarray], np.ndarray],
    ) -> float | None:
        """The share of `apply`'s growth of ``box`` that goes before it (above, left), from the
        object: in proportion to the object probability (``probability``: (h, w) bool cells ->
        their probabilities, the track's appearance memory) of the cells just beyond each side
        of the box, as deep as the growth, with the prompt's share as a prior worth one cell.
        None when the growth is under a cell."""
        axis, grow = self.growth(box)
        gh, gw = grid_shape
        sy, sx = gh / image_size[0], gw / image_size[1]
        y0, y1 = int(box[1] * sy), min(gh, int(np.ceil(box[3] * sy)))
        x0, x1 = int(box[0] * sx), min(gw, int(np.ceil(box[2] * sx)))
        depth = int(np.ceil(grow * (sy if axis == 0 else sx)))
        if depth < 1:
            return None
        before = np.zeros(grid_shape, bool)
        after = np.zeros(grid_shape, bool)
        if axis == 0:
            before[max(0, y0 - depth) : y0, x0:x1] = True
            after[y1 : y1 + depth, x0:x1] = True
            prior = self.top_share
        else:
            before[y0:y1, max(0, x0 - depth) : x0] = True
            after[y0:y1, x1 : x1 + depth] = True
            prior = self.left_share
        cells = before | after
        prob = probability(cells)  # in the order of cells' flat indices, as before[cells] is
        return (float(prob[before[cells]].sum()) + prior) / (float(prob.sum()) + 1.0)

    def to_list(self) -> list[float]:
        return [self.aspect, self.left_share, self.top_share]
