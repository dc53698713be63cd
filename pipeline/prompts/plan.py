"""What a prompt asks of one frame (`Prompt.plan`): the frame it is planned on and the masks it asks
the segmenter for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.models.base import Backbone, MaskRequest
from pipeline.prompts.base import Box
from pipeline.types import FeatureMap

if TYPE_CHECKING:
    from pipeline.prompts.text import TextDetector


@dataclass
class MaskAsk:
    """An object a prompt found whose mask the segmenter is to make.

    Attributes:
        request: What the segmenter gets.
        box: The object's box when known (a mask from the box stands in for an empty answer).
        score: The object's score (None: the segmenter's).
        label: Its label.
        from_prompt: Whether it is a user prompt's first application.
    """

    request: MaskRequest
    box: Box | None
    score: float | None
    label: str | None
    from_prompt: bool


@dataclass(frozen=True)
class PromptFrame:
    """One frame as prompts are planned on it, with the models resolving has besides the segmenter.

    Attributes:
        image: HxWx3 uint8 RGB frame.
        features: Its patch features.
        index: The frame index the prompts are planned at.
        text_detector: Finds the objects of text prompts (None: none configured).
        backbone: Enrols exemplar prompts that have no prototype yet (None: none given).
    """

    image: np.ndarray
    features: FeatureMap
    index: int
    text_detector: TextDetector | None = None
    backbone: Backbone | None = None

    def box_asks(
        self, found: Iterable[tuple[Box, float, str | None]], from_prompt: bool
    ) -> list[MaskAsk]:
        """A box request for every (box, score, label) found, clipped to the frame; boxes wholly
        outside it are dropped."""
        height, width = self.image.shape[:2]
        asks = []
        for box, score, label in found:
            x0, y0 = max(0.0, box[0]), max(0.0, box[1])
            x1, y1 = min(float(width), box[2]), min(float(height), box[3])
            if x1 > x0 and y1 > y0:
                clipped = (x0, y0, x1, y1)
                asks.append(MaskAsk(MaskRequest(box=clipped), clipped, score, label, from_prompt))
        return asks
