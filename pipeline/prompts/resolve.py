"""Turn prompts into `Observation`s for one frame; every segmenter request of the frame goes in one
`Segmenter.segment` call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.masks import box_to_mask, mask_to_box
from pipeline.models.base import Backbone, MaskProposal, Segmenter
from pipeline.prompts.base import Prompt
from pipeline.prompts.errors import PromptError
from pipeline.prompts.plan import MaskAsk, PromptFrame
from pipeline.prompts.text import TextDetector
from pipeline.types import FeatureMap, Observation


@dataclass
class _Pending:
    """An object waiting for its mask from the segmenter."""

    ask: MaskAsk
    index: int  # of its prompt in the list
    prompt: Prompt

    def answered(
        self, proposal: MaskProposal, segmenter: str, size: tuple[int, int]
    ) -> Observation:
        """The observation the segmenter's answer makes (the box's mask stands in for an empty
        answer; points with an empty answer are an error)."""
        height, width = size
        mask = np.asarray(proposal.mask, dtype=bool)
        if mask.shape != (height, width):
            raise RuntimeError(
                f"segmenter {segmenter!r} answered a {mask.shape} mask for a {height}x{width} frame"
            )
        ask = self.ask
        if not mask.any():
            if ask.box is None:
                raise self.prompt.error(
                    "the segmenter found no object at these points",
                    "move the positive points onto the object or give a box",
                ).at(self.index)
            mask = box_to_mask(ask.box, height, width)
        box = mask_to_box(mask)
        assert box is not None
        return Observation(
            box=box,
            mask=mask,
            score=float(np.clip(proposal.score if ask.score is None else ask.score, 0, 1)),
            label=ask.label,
            origin="prompt" if ask.from_prompt else "detection",
            framing=ask.box if ask.from_prompt else None,
        )


def resolve_prompts(
    prompts: Sequence[Prompt],
    image: np.ndarray,
    features: FeatureMap,
    segmenter: Segmenter,
    text_detector: TextDetector | None = None,
    *,
    frame_index: int | None = None,
    backbone: Backbone | None = None,
) -> list[Observation]:
    """Observations of one frame from prompts, with one ``segmenter.segment`` call for them all.

    Args:
        prompts: Prompts to apply (validated beforehand with `validate_prompts`).
        image: HxWx3 uint8 RGB frame.
        features: Its patch features (exemplars are matched in them; the segmenter gets them).
        segmenter: Makes the masks of box, points, scribble, exemplar, text and detection objects.
        text_detector: Needed by text prompts (any object with ``detect(image, queries,
            threshold)``).
        frame_index: Index of ``image`` in the video. None applies every prompt as on its own
            frame (detections: those of the prompt's ``frame``); otherwise only the prompts that
            act on this frame (see `Prompt.applies_at`) are applied.
        backbone: Enrols exemplar prompts that have no prototype yet.

    Returns:
        Observations in prompt order (a mask prompt's objects by ascending id, matches best
        first). ``origin`` is ``"prompt"`` for a user prompt's first application,
        ``"detection"`` for external detections and re-detections.

    Raises:
        PromptError: Naming the prompt by its index in ``prompts``: a text prompt without a
            detector, an exemplar that matches nothing where it is first applied, points whose
            mask is empty, a mask of another size than the frame.
    """
    height, width = image.shape[:2]
    slots: list[Observation | _Pending] = []
    for i, prompt in enumerate(prompts):
        index = prompt.frame if frame_index is None else frame_index
        acts, first = prompt.applies_at(index)
        if not acts:
            continue
        frame = PromptFrame(image, features, index, text_detector, backbone)
        try:
            if first:
                prompt.check(width, height)
            planned = prompt.plan(frame, first)
        except PromptError as err:
            raise err.at(i, prompt.kind) from None
        slots += [p if isinstance(p, Observation) else _Pending(p, i, prompt) for p in planned]
    pending = [s for s in slots if isinstance(s, _Pending)]
    requests = [p.ask.request for p in pending]
    proposals = segmenter.segment(image, features, requests) if pending else []
    if len(proposals) != len(pending):
        raise RuntimeError(
            f"segmenter {segmenter.name!r} answered {len(proposals)} masks for "
            f"{len(pending)} requests"
        )
    answers = dict(zip(map(id, pending), proposals, strict=True))
    size = (height, width)
    return [
        s if isinstance(s, Observation) else s.answered(answers[id(s)], segmenter.name, size)
        for s in slots
    ]


def resolve_prompt(
    prompt: Prompt,
    image: np.ndarray,
    features: FeatureMap,
    segmenter: Segmenter,
    text_detector: TextDetector | None = None,
    *,
    frame_index: int | None = None,
    backbone: Backbone | None = None,
) -> list[Observation]:
    """`resolve_prompts` for one prompt."""
    return resolve_prompts(
        [prompt],
        image,
        features,
        segmenter,
        text_detector,
        frame_index=frame_index,
        backbone=backbone,
    )
