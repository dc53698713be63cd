"""A box prompt's framing of its object, kept in the track's published boxes.

A box prompt frames the whole object, but the mask made from it may cover a part (patch features
at stride 8 split a 20-pixel pedestrian into torso and legs), and a mask followed for long loses
parts that move (a runner's legs). A box-prompted track therefore publishes its mask's box grown
(never shrunk) to the prompt box's aspect ratio: the missing height (or width) is added on the
sides where the prompt box reached past its mask, in the same shares (evenly when it did not).
A mask that covers the object, as SAM's do, already has the prompt's aspect: its box is published.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def apply(self, box: Box, image_size: tuple[int, int]) -> Box:
        """``box`` grown to the framing's aspect ratio, clipped to the image."""
        x0, y0, x1, y1 = box
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        if w / h > self.aspect:  # too wide for the prompt's shape: height is missing
            grow = w / self.aspect - h
            y0, y1 = y0 - grow * self.top_share, y1 + grow * (1 - self.top_share)
        else:
            grow = h * self.aspect - w
            x0, x1 = x0 - grow * self.left_share, x1 + grow * (1 - self.left_share)
        height, width = image_size
        return (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                min(max(x1, 0.0), width), min(max(y1, 0.0), height))  # fmt: skip

    def to_list(self) -> list[float]:
        return [self.aspect, self.left_share, self.top_share]
