"""Text prompts: categories or a phrase, found by a zero-shot detector, then segmented."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from pipeline.prompts.base import (
    Box,
    RedetectingPrompt,
    check_keys,
    read_common,
    read_int,
    read_number,
    require,
)
from pipeline.prompts.errors import PromptError
from pipeline.prompts.plan import MaskAsk, PromptFrame


@runtime_checkable
class TextDetector(Protocol):
    """A zero-shot detector (e.g. ``pipeline.models.text_detector.TextDetector``)."""

    def detect(
        self, image: np.ndarray, queries: list[str], threshold: float
    ) -> list[tuple[Box, float, str]]:
        """Boxes (original-frame pixels), scores and the matching query, for an RGB image."""
        ...


def split_queries(text: str) -> list[str]:
    """``"person, red car"`` -> ``["person", "red car"]`` (commas or semicolons separate)."""
    return [q.strip() for q in text.replace(";", ",").split(",") if q.strip()]


@dataclass(kw_only=True)
class TextPrompt(RedetectingPrompt):
    """Objects named in words; a text detector finds their boxes, the segmenter their masks.

    Attributes:
        text: Categories or a phrase, comma-separated (e.g. "person, red car").
        threshold: Least detector score of a detection that becomes an object (default 0.3).
        redetect_every: Detect again every N frames after the first as re-detections that the
            tracker may link (default 0: only at ``frame``).
    """

    kind: ClassVar[str] = "text"
    keys: ClassVar[frozenset[str]] = frozenset({"text", "threshold", "redetect_every"})
    needs_text_detector: ClassVar[bool] = True

    text: str
    threshold: float = 0.3

    @property
    def queries(self) -> list[str]:
        """The separate queries of ``text``."""
        return split_queries(self.text)

    def _fields_to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "threshold": self.threshold,
            "redetect_every": self.redetect_every,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], base_dir: Path | None = None) -> TextPrompt:
        check_keys(cls.kind, obj, cls.keys)
        text = require(cls.kind, obj, "text", '"person, red car"')
        if isinstance(text, list) and all(isinstance(t, str) for t in text):
            text = ", ".join(t.strip() for t in text)
        if not isinstance(text, str):
            raise PromptError(
                f"text {text!r} is not a string",
                'give "text": "person, red car" (comma-separated categories or a phrase)',
                kind=cls.kind,
            )
        return cls(
            text=text,
            threshold=read_number(cls.kind, obj.get("threshold", 0.3), "threshold"),
            redetect_every=read_int(cls.kind, obj.get("redetect_every", 0), "redetect_every"),
            **read_common(cls.kind, obj),
        )

    def check(self, width: int, height: int) -> None:
        if not self.queries:
            raise self.error("no words to look for", 'give categories such as "person, red car"')
        if not 0.0 <= self.threshold <= 1.0:
            raise self.error(
                f"threshold {self.threshold} is outside 0..1", "give a detector score in 0..1"
            )

    def describe(self) -> str:
        return repr(self.text)

    def plan(self, frame: PromptFrame, first: bool) -> list[MaskAsk]:
        """Box requests for what the frame's text detector finds, labelled with the prompt's label
        or else the query that found them."""
        if frame.text_detector is None:
            raise self.error(
                "a text prompt needs a zero-shot text detector",
                "configure a text detector for the pipeline, or give box or point prompts",
            )
        found = frame.text_detector.detect(frame.image, self.queries, self.threshold)
        return frame.box_asks(
            (
                (tuple(float(v) for v in box), score, self.label or query)
                for box, score, query in found
            ),
            first,
        )
