"""Geometric prompts: a box, clicked points, and a scribble (a polyline sampled to points)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.models.base import MaskRequest
from pipeline.prompts.base import (
    Box,
    Prompt,
    box_problem,
    check_keys,
    fmt_seq,
    points_problem,
    read_box,
    read_common,
    read_int,
    read_number,
    read_xy_list,
    require,
)
from pipeline.prompts.errors import PromptError
from pipeline.prompts.plan import MaskAsk, PromptFrame


@dataclass(kw_only=True)
class BoxPrompt(Prompt):
    """One object given by its box.

    Attributes:
        box: (x0, y0, x1, y1) in pixels of the original frame.
    """

    kind: ClassVar[str] = "box"
    keys: ClassVar[frozenset[str]] = frozenset({"box"})

    box: Box

    def _fields_to_json(self) -> dict[str, Any]:
        return {"box": list(self.box)}

    @classmethod
    def from_json(cls, obj: dict[str, Any], base_dir: Path | None = None) -> BoxPrompt:
        check_keys(cls.kind, obj, cls.keys)
        box = read_box(cls.kind, require(cls.kind, obj, "box", "[x0, y0, x1, y1]"))
        return cls(box=box, **read_common(cls.kind, obj))

    def check(self, width: int, height: int) -> None:
        problem = box_problem(self.box, width, height)
        if problem:
            raise self.error(*problem)

    def describe(self) -> str:
        return fmt_seq(self.box)

    def plan(self, frame: PromptFrame, first: bool) -> list[MaskAsk]:
        """The segmenter's mask for the box."""
        return [MaskAsk(MaskRequest(box=self.box), self.box, None, self.label, True)]


@dataclass(kw_only=True)
class PointsPrompt(Prompt):
    """One object given by clicks: positive points on it, negative points on what is not it.

    Attributes:
        points: (x, y) pixels of the original frame.
        labels: One per point, 1 = object, 0 = background (default: all 1).
    """

    kind: ClassVar[str] = "points"
    keys: ClassVar[frozenset[str]] = frozenset({"points", "labels"})

    points: list[tuple[float, float]]
    labels: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.points = [(float(x), float(y)) for x, y in self.points]
        self.labels = [int(v) for v in self.labels] if self.labels else [1] * len(self.points)

    def _fields_to_json(self) -> dict[str, Any]:
        return {"points": [list(p) for p in self.points], "labels": list(self.labels)}

    @classmethod
    def from_json(cls, obj: dict[str, Any], base_dir: Path | None = None) -> PointsPrompt:
        check_keys(cls.kind, obj, cls.keys)
        points = read_xy_list(cls.kind, require(cls.kind, obj, "points", "[[x, y], ...]"), "points")
        labels = obj.get("labels", [1] * len(points))
        if (
            not isinstance(labels, list)
            or len(labels) != len(points)
            or any(v not in (0, 1) or isinstance(v, bool) for v in labels)
        ):
            raise PromptError(
                f"labels {labels!r} do not match the {len(points)} point(s)",
                'give "labels": one 1 (object) or 0 (background) per point',
                kind=cls.kind,
                value=fmt_seq(points),
            )
        return cls(points=points, labels=labels, **read_common(cls.kind, obj))

    def check(self, width: int, height: int) -> None:
        if not self.points:
            raise self.error("no points", "give at least one point x,y")
        if len(self.labels) != len(self.points) or any(v not in (0, 1) for v in self.labels):
            raise self.error(
                f"labels {self.labels} do not match the {len(self.points)} point(s)",
                "give one label per point: 1 (object) or 0 (background)",
            )
        if 1 not in self.labels:
            raise self.error(
                "no positive point (every label is 0)", "add at least one point with label 1"
            )
        problem = points_problem(self.points, width, height)
        if problem:
            raise self.error(*problem)

    def describe(self) -> str:
        return fmt_seq(self.points)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Points as an (N, 2) float32 array and labels as an (N,) int32 array."""
        return (
            np.asarray(self.points, dtype=np.float32).reshape(-1, 2),
            np.asarray(self.labels, dtype=np.int32),
        )

    def plan(self, frame: PromptFrame, first: bool) -> list[MaskAsk]:
        """The segmenter's mask for the points."""
        points, labels = self.arrays()
        return [
            MaskAsk(MaskRequest(points=points, point_labels=labels), None, None, self.label, True)
        ]


@dataclass(kw_only=True)
class ScribblePrompt(Prompt):
    """One object given by a stroke drawn on it; the polyline is sampled to positive points.

    Attributes:
        polyline: (x, y) vertices in pixels of the original frame.
        spacing: Distance in pixels between sampled points (default 24).
        max_points: Most points sampled from one scribble (default 12); a long stroke gets its
            points spread evenly.
    """

    kind: ClassVar[str] = "scribble"
    keys: ClassVar[frozenset[str]] = frozenset({"polyline", "spacing", "max_points"})

    polyline: list[tuple[float, float]]
    spacing: float = 24.0
    max_points: int = 12

    def __post_init__(self) -> None:
        self.polyline = [(float(x), float(y)) for x, y in self.polyline]

    def _fields_to_json(self) -> dict[str, Any]:
        return {
            "polyline": [list(p) for p in self.polyline],
            "spacing": self.spacing,
            "max_points": self.max_points,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], base_dir: Path | None = None) -> ScribblePrompt:
        check_keys(cls.kind, obj, cls.keys)
        poly = read_xy_list(
            cls.kind, require(cls.kind, obj, "polyline", "[[x, y], ...]"), "polyline"
        )
        spacing = read_number(cls.kind, obj.get("spacing", 24.0), "spacing", lo=1.0)
        max_points = read_int(cls.kind, obj.get("max_points", 12), "max_points", lo=1)
        return cls(
            polyline=poly, spacing=spacing, max_points=max_points, **read_common(cls.kind, obj)
        )

    def check(self, width: int, height: int) -> None:
        if not self.polyline:
            raise self.error("empty polyline", "give at least one [x, y] vertex")
        problem = points_problem(self.polyline, width, height)
        if problem:
            raise self.error(*problem)

    def describe(self) -> str:
        return fmt_seq(self.polyline)

    def sample_points(self) -> np.ndarray:
        """Points evenly spaced along the polyline (both ends included), as (N, 2) float32.

        N is ``length / spacing + 1`` rounded, between 1 and ``max_points``.
        """
        verts = np.asarray(self.polyline, dtype=np.float64).reshape(-1, 2)
        seg = np.linalg.norm(np.diff(verts, axis=0), axis=1)
        total = float(seg.sum())
        if total == 0.0:
            return verts[:1].astype(np.float32)
        n = int(np.clip(round(total / self.spacing) + 1, 2, self.max_points))
        if self.max_points == 1:
            n = 1
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        at = np.linspace(0.0, total, n) if n > 1 else np.array([total / 2])
        xs = np.interp(at, cum, verts[:, 0])
        ys = np.interp(at, cum, verts[:, 1])
        return np.stack([xs, ys], axis=1).astype(np.float32)

    def plan(self, frame: PromptFrame, first: bool) -> list[MaskAsk]:
        """The segmenter's mask for the points sampled along the stroke (all positive)."""
        points = self.sample_points()
        request = MaskRequest(points=points, point_labels=np.ones(len(points), dtype=np.int32))
        return [MaskAsk(request, None, None, self.label, True)]
