"""External detections: boxes (with optional scores and labels) per frame, e.g. a MOTChallenge
``det.txt``; they become observations the tracker links (never confirmed tracks by themselves)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pipeline.prompts.base import (
    Application,
    Box,
    Prompt,
    check_keys,
    fmt_num,
    read_box,
    read_common,
    read_number,
    resolve_path,
)
from pipeline.prompts.errors import PromptError
from pipeline.prompts.plan import MaskAsk, PromptFrame

#: One detection: box (x0, y0, x1, y1) pixels, score, label (or None).
Detection = tuple[Box, float, str | None]

FORMATS = ("mot", "json")


def load_mot(path: Path) -> dict[int, list[Detection]]:
    """Read a MOTChallenge ``det.txt`` / ``gt.txt``: ``frame, id, x, y, w, h, score, ...`` per line
    (frame 1-based, top-left x, y, width, height in pixels). Returns 0-based frame -> detections.

    The score is the 7th column (1.0 when absent); blank lines and ``#`` comments are skipped.
    """
    out: dict[int, list[Detection]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cells = [c.strip() for c in line.replace(" ", ",").split(",") if c.strip()]
            try:  # errors name the line, never its text: the file may not be the user's
                if len(cells) < 6:
                    raise ValueError(f"{len(cells)} columns")
                frame = int(float(cells[0]))
                x, y, w, h = (float(c) for c in cells[2:6])
                score = float(cells[6]) if len(cells) > 6 else 1.0
            except ValueError as exc:
                why = str(exc) if len(cells) < 6 else "a cell is not a number"
                raise PromptError(
                    f"{path.name} line {lineno} is not 'frame,id,x,y,w,h,score,...' ({why})",
                    "give a MOTChallenge det.txt (or use format 'json')",
                    kind="detections",
                    value=repr(path.name),
                ) from exc
            if frame < 1 or w <= 0 or h <= 0:
                raise PromptError(
                    f"{path.name} line {lineno} has frame {frame} or size "
                    f"{fmt_num(w)}x{fmt_num(h)}",
                    "MOT frames start at 1 and boxes have positive width and height",
                    kind="detections",
                    value=repr(path.name),
                )
            out.setdefault(frame - 1, []).append(((x, y, x + w, y + h), score, None))
    return out


def detections_from_list(items: Any, where: str) -> dict[int, list[Detection]]:
    """Read ``[{"frame": 0, "box": [x0, y0, x1, y1], "score": 0.9, "label": "car"}, ...]``
    (frame 0-based; score default 1.0; label optional)."""
    fix = 'give [{"frame": 0, "box": [x0, y0, x1, y1], "score": 0.9, "label": "car"}, ...]'
    if not isinstance(items, list):
        raise PromptError(f"{where} is not a list", fix, kind="detections")
    out: dict[int, list[Detection]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "box" not in item:
            raise PromptError(
                f"{where} item {i} has no 'box': {item!r:.60}", fix, kind="detections"
            )
        frame = item.get("frame", 0)
        if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
            raise PromptError(f"{where} item {i} has frame {frame!r}", fix, kind="detections")
        box = read_box("detections", item["box"])
        if box[2] <= box[0] or box[3] <= box[1]:
            raise PromptError(
                f"{where} item {i} box {list(box)} has negative or zero size",
                "give boxes as x0, y0, x1, y1 with x0 < x1 and y0 < y1",
                kind="detections",
            )
        score = read_number("detections", item.get("score", 1.0), "score")
        label = item.get("label")
        out.setdefault(frame, []).append((box, score, None if label is None else str(label)))
    return out


@dataclass(kw_only=True)
class DetectionsPrompt(Prompt):
    """Boxes from an external detector for every frame they cover.

    Attributes:
        detections: 0-based frame index -> list of (box, score, label).
        path: The file they were read from, if any (informative only).
        format: "mot" (MOTChallenge det.txt) or "json" (a list of dicts).
        min_score: Detections scoring below this are ignored (default: keep all).

    ``frame`` is unused (detections carry their own frames); ``label`` names the objects whose
    detections have no label of their own.
    """

    kind: ClassVar[str] = "detections"
    keys: ClassVar[frozenset[str]] = frozenset({"path", "format", "detections", "min_score"})

    detections: dict[int, list[Detection]] = field(default_factory=dict)
    path: str | None = None
    format: str = "mot"
    min_score: float | None = None

    @classmethod
    def from_file(cls, path: str | Path, fmt: str | None = None) -> DetectionsPrompt:
        """Read a detections file; the format defaults to "json" for ``.json``, else "mot"."""
        resolved = resolve_path(str(path), None, cls.kind)
        return cls._load(resolved, fmt or _format_for(resolved))

    @classmethod
    def _load(cls, path: Path, fmt: str, **kwargs: Any) -> DetectionsPrompt:
        if fmt == "mot":
            dets = load_mot(path)
        elif fmt == "json":
            try:
                items = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "UTF-8"
                raise PromptError(
                    f"{path.name} is not valid JSON ({where})",
                    "fix the file or use format 'mot' for a det.txt",
                    kind=cls.kind,
                    value=repr(path.name),
                ) from exc
            try:
                dets = detections_from_list(items, path.name)
            except PromptError:  # its message quotes values: never the file's content
                raise PromptError(
                    f"{path.name} is not a list of detections",
                    'give [{"frame": 0, "box": [x0, y0, x1, y1], "score": 0.9}, ...]',
                    kind=cls.kind,
                    value=repr(path.name),
                ) from None
        else:
            raise PromptError(
                f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}", kind=cls.kind
            )
        return cls(detections=dets, path=str(path), format=fmt, **kwargs)

    def for_frame(self, index: int) -> list[Detection]:
        """Detections of frame ``index`` (0-based) that pass ``min_score``, labelled."""
        return [
            (box, score, label if label is not None else self.label)
            for box, score, label in self.detections.get(index, [])
            if self.min_score is None or score >= self.min_score
        ]

    def _fields_to_json(self) -> dict[str, Any]:
        items = []
        for frame in sorted(self.detections):
            for box, score, label in self.detections[frame]:
                item: dict[str, Any] = {"frame": frame, "box": list(box), "score": score}
                if label is not None:
                    item["label"] = label
                items.append(item)
        out: dict[str, Any] = {"format": self.format, "detections": items}
        if self.path is not None:
            out["path"] = self.path
        if self.min_score is not None:
            out["min_score"] = self.min_score
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], base_dir: Path | None = None) -> DetectionsPrompt:
        check_keys(cls.kind, obj, cls.keys)
        common = read_common(cls.kind, obj)
        min_score = obj.get("min_score")
        if min_score is not None:
            min_score = read_number(cls.kind, min_score, "min_score")
        fmt = obj.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise PromptError(
                f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}", kind=cls.kind
            )
        if "detections" in obj:  # inline (this is how they travel over Redis)
            path = obj.get("path")
            return cls(
                detections=detections_from_list(obj["detections"], "detections"),
                path=path if isinstance(path, str) else None,
                format=fmt or "json",
                min_score=min_score,
                **common,
            )
        if "path" not in obj:
            raise PromptError(
                "neither 'path' nor 'detections' given",
                'add "path": "det.txt" (MOTChallenge) or "detections": [...]',
                kind=cls.kind,
            )
        path = resolve_path(obj["path"], base_dir, cls.kind)
        return cls._load(path, fmt or _format_for(path), min_score=min_score, **common)

    def check(self, width: int, height: int) -> None:
        boxes = [box for dets in self.detections.values() for box, _, _ in dets]
        if not boxes:
            raise self.error("no detections", "give a file with at least one detection")
        inside = [b for b in boxes if b[0] < width and b[1] < height and b[2] > 0 and b[3] > 0]
        if not inside:
            raise self.error(
                f"none of the {len(boxes)} detections overlaps the {width}x{height} frame",
                "check that the detections belong to this video (and its resolution)",
            )

    def describe(self) -> str:
        if self.path:
            return repr(Path(self.path).name)
        return f"<{sum(len(v) for v in self.detections.values())} detections>"

    def applies_at(self, frame_index: int) -> Application:
        """Detections act on every frame (those it holds), never as a first application: they
        are not user prompts."""
        return Application(True, False)

    def plan(self, frame: PromptFrame, first: bool) -> list[MaskAsk]:
        """Box requests for the frame's detections (clipped to it), with their scores."""
        return frame.box_asks(self.for_frame(frame.index), False)


def _format_for(path: Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "mot"
