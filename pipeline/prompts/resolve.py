"""Turn prompts into `Observation`s for one frame; every segmenter request of the frame goes in one
`Segmenter.segment` call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.masks import box_to_mask, mask_to_box
from pipeline.models.base import Backbone, MaskRequest, Segmenter
from pipeline.prompts.base import Box, Prompt
from pipeline.prompts.detections import DetectionsPrompt
from pipeline.prompts.errors import PromptError
from pipeline.prompts.exemplar import ExemplarPrompt
from pipeline.prompts.geometry import BoxPrompt, PointsPrompt, ScribblePrompt
from pipeline.prompts.mask import MaskPrompt
from pipeline.prompts.text import TextDetector, TextPrompt
from pipeline.types import FeatureMap, Observation


@dataclass
class _Pending:
    """An object waiting for its mask from the segmenter."""

    request: MaskRequest
    index: int
    prompt: Prompt
    box: Box | None  # its box when known (a mask from the box stands in for an empty answer)
    score: float | None  # None: use the segmenter's score
    label: str | None
    from_prompt: bool


def applies_at(prompt: Prompt, frame_index: int) -> tuple[bool, bool]:
    """Whether ``prompt`` acts on frame ``frame_index``, and whether it is its first application.

    Box, points, scribble and mask prompts act on their own frame only; text and exemplar prompts
    on their frame and then every ``redetect_every`` frames (as re-detections); detections on
    every frame they hold (never as first applications: they are not user prompts).
    """
    if isinstance(prompt, DetectionsPrompt):
        return True, False
    if frame_index == prompt.frame:
        return True, True
    every = getattr(prompt, "redetect_every", 0)
    later = frame_index > prompt.frame and every > 0 and (frame_index - prompt.frame) % every == 0
    return later, False


def _clip(box: Box, width: int, height: int) -> Box | None:
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(width), box[2]), min(float(height), box[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


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
            act on this frame (see `applies_at`) are applied.
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
        acts, first = (True, True) if frame_index is None else applies_at(prompt, frame_index)
        if not acts:
            continue
        try:
            slots.extend(_plan(prompt, i, first, index, image, features, text_detector, backbone))
        except PromptError as err:
            raise err.at(i, prompt.kind) from None
    pending = [s for s in slots if isinstance(s, _Pending)]
    proposals = segmenter.segment(image, features, [p.request for p in pending]) if pending else []
    if len(proposals) != len(pending):
        raise RuntimeError(
            f"segmenter {segmenter.name!r} answered {len(proposals)} masks for "
            f"{len(pending)} requests"
        )
    answers = dict(zip(map(id, pending), proposals, strict=True))
    out: list[Observation] = []
    for slot in slots:
        if isinstance(slot, Observation):
            out.append(slot)
            continue
        proposal = answers[id(slot)]
        mask = np.asarray(proposal.mask, dtype=bool)
        if mask.shape != (height, width):
            raise RuntimeError(
                f"segmenter {segmenter.name!r} answered a {mask.shape} mask for a "
                f"{height}x{width} frame"
            )
        if not mask.any():
            if slot.box is None:
                raise slot.prompt.error(
                    "the segmenter found no object at these points",
                    "move the positive points onto the object or give a box",
                ).at(slot.index)
            mask = box_to_mask(slot.box, height, width)
        box = mask_to_box(mask)
        assert box is not None
        out.append(
            Observation(
                box=box,
                mask=mask,
                score=float(np.clip(proposal.score if slot.score is None else slot.score, 0, 1)),
                label=slot.label,
                origin="prompt" if slot.from_prompt else "detection",
            )
        )
    return out


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


def _plan(
    prompt: Prompt,
    i: int,
    first: bool,
    frame_index: int,
    image: np.ndarray,
    features: FeatureMap,
    text_detector: TextDetector | None,
    backbone: Backbone | None,
) -> list[Observation | _Pending]:
    """What one prompt asks of this frame: ready observations or pending segmenter requests."""
    height, width = image.shape[:2]
    if first and not isinstance(prompt, DetectionsPrompt):
        prompt.check(width, height)
    if isinstance(prompt, MaskPrompt):
        return [
            Observation(box=mask_to_box(m), mask=m, score=1.0, label=prompt.label, origin="prompt")
            for m in prompt.object_masks().values()
        ]
    if isinstance(prompt, BoxPrompt):
        return [
            _Pending(MaskRequest(box=prompt.box), i, prompt, prompt.box, None, prompt.label, True)
        ]
    if isinstance(prompt, PointsPrompt):
        points, labels = prompt.arrays()
        request = MaskRequest(points=points, point_labels=labels)
        return [_Pending(request, i, prompt, None, None, prompt.label, True)]
    if isinstance(prompt, ScribblePrompt):
        points = prompt.sample_points()
        request = MaskRequest(points=points, point_labels=np.ones(len(points), dtype=np.int32))
        return [_Pending(request, i, prompt, None, None, prompt.label, True)]
    if isinstance(prompt, DetectionsPrompt):
        found = []
        for box, score, label in prompt.for_frame(frame_index):
            clipped = _clip(box, width, height)
            if clipped is not None:
                found.append(
                    _Pending(MaskRequest(box=clipped), i, prompt, clipped, score, label, False)
                )
        return found
    if isinstance(prompt, TextPrompt):
        if text_detector is None:
            raise prompt.error(
                "a text prompt needs a zero-shot text detector",
                "configure a text detector for the pipeline, or give box or point prompts",
            )
        dets = text_detector.detect(image, prompt.queries, prompt.threshold)
        found = []
        for box, score, query in dets:
            clipped = _clip(tuple(float(v) for v in box), width, height)
            if clipped is not None:
                label = prompt.label or query
                found.append(
                    _Pending(MaskRequest(box=clipped), i, prompt, clipped, score, label, first)
                )
        return found
    if isinstance(prompt, ExemplarPrompt):
        exemplar = prompt.exemplar
        if exemplar is None or (backbone is not None and exemplar.backbone != backbone.name):
            if backbone is None:
                raise prompt.error(
                    "the exemplar is not enrolled",
                    "call prompt.enroll(backbone) first, or pass backbone= to resolve_prompts",
                )
            exemplar = prompt.enroll(backbone)
        matches = exemplar.match(features, prompt.threshold, prompt.max_matches)
        if not matches and first:
            raise prompt.no_match(frame_index, exemplar.best_similarity(features))
        found = []
        for box, score in matches:
            clipped = _clip(box, width, height)
            if clipped is not None:
                found.append(
                    _Pending(
                        MaskRequest(box=clipped), i, prompt, clipped, score, prompt.label, first
                    )
                )
        return found
    raise PromptError(
        f"no resolver for prompt type {type(prompt).__name__}",
        "use one of the prompt kinds of pipeline.prompts",
        kind=prompt.kind or None,
    )
