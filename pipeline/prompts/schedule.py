"""`PromptSchedule`: the prompts of one source over time, and what they say about each frame."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.models.base import Backbone, Segmenter
from pipeline.prompts.base import Prompt
from pipeline.prompts.jsonfile import prompts_from_json
from pipeline.prompts.resolve import resolve_prompts
from pipeline.prompts.text import TextDetector
from pipeline.types import FeatureMap, Frame, Observation


class PromptSchedule:
    """The prompts of one source: those whose frame has not come yet, and those applied (text and
    exemplar prompts re-detect later, detections hold later frames), with what resolving needs.

    Args:
        segmenter: Makes the masks of the prompts' objects.
        text_detector: Finds the objects of text prompts (see `Prompt.needs_text_detector`).
        backbone: Enrols exemplar prompts that have no prototype yet.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        *,
        text_detector: TextDetector | None = None,
        backbone: Backbone | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.text_detector = text_detector
        self.backbone = backbone
        self._pending: list[Prompt] = []  # prompts whose frame has not come yet
        self._applied: list[Prompt] = []  # prompts applied once (they may act again)

    def add(self, prompts: Iterable[Prompt]) -> None:
        """Queue prompts; each applies at the first frame given to `observations` whose index is
        >= its ``frame``; text and exemplar prompts then re-detect every ``redetect_every``
        frames, and detections act on every frame they hold."""
        self._pending.extend(prompts)

    def observations(self, frame: Frame, features: FeatureMap) -> list[Observation]:
        """Observations of the prompts acting on this frame (frames must come in increasing index
        order): first applications of prompts whose frame has come (origin "prompt", resolved as on
        their own frame), then re-detections and external detections of prompts applied before
        (origin "detection"), each group in one segmenter call.

        Raises:
            PromptError: A prompt cannot apply (see `resolve_prompts`).
        """
        due = [p for p in self._pending if p.frame <= frame.index]
        if due:
            self._pending = [p for p in self._pending if p.frame > frame.index]
            self._applied.extend(due)
        firsts = [p for p in due if p.applies_at(p.frame).first]  # detections have none
        later = [
            p
            for p in self._applied
            if not any(p is f for f in firsts) and p.applies_at(frame.index).acts
        ]
        kwargs = {"text_detector": self.text_detector, "backbone": self.backbone}
        observations: list[Observation] = []
        if firsts:
            observations += resolve_prompts(firsts, frame.image, features, self.segmenter, **kwargs)
        if later:
            observations += resolve_prompts(
                later, frame.image, features, self.segmenter, frame_index=frame.index, **kwargs
            )
        return observations

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The pending and applied prompts as JSON (exemplars with their prototypes)."""
        return {
            "pending": [p.to_json() for p in self._pending],
            "applied": [p.to_json() for p in self._applied],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self._pending = prompts_from_json(state["pending"])
        self._applied = prompts_from_json(state["applied"])
