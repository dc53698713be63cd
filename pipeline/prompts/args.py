"""Parsers of the CLI string forms (``--box x0,y0,x1,y1@frame`` ...)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.prompts.base import Prompt
from pipeline.prompts.detections import DetectionsPrompt
from pipeline.prompts.errors import PromptError
from pipeline.prompts.exemplar import ExemplarPrompt
from pipeline.prompts.geometry import BoxPrompt, PointsPrompt
from pipeline.prompts.mask import MaskPrompt
from pipeline.prompts.text import TextPrompt


def _split_frame(s: str, kind: str, form: str, path: bool = False) -> tuple[str, int]:
    """``"body@12"`` -> ``("body", 12)``; no ``@`` -> frame 0. With ``path``, an ``@`` not
    followed by digits belongs to the file name."""
    body, sep, frame = s.strip().rpartition("@")
    if not sep or (path and not frame.strip().isdigit()):
        return s.strip(), 0
    if not frame.strip().isdigit():
        raise PromptError(
            f"frame {frame!r} is not a frame index", f"write {form}", kind=kind, value=repr(s)
        )
    return body.strip(), int(frame)


def _numbers(s: str, n: tuple[int, ...], kind: str, form: str, whole: str) -> list[float]:
    try:
        values = [float(v) for v in s.split(",")]
    except ValueError:
        values = []
    if len(values) not in n:
        raise PromptError(
            f"{s!r} is not {' or '.join(str(k) for k in n)} comma-separated numbers",
            f"write {form}",
            kind=kind,
            value=repr(whole),
        )
    return values


def parse_box_arg(s: str) -> BoxPrompt:
    """``--box x0,y0,x1,y1[@frame]`` -> `BoxPrompt`."""
    form = "--box x0,y0,x1,y1[@frame], e.g. --box 10,20,110,220@0"
    body, frame = _split_frame(s, "box", form)
    x0, y0, x1, y1 = _numbers(body, (4,), "box", form, s)
    return BoxPrompt(box=(x0, y0, x1, y1), frame=frame)


def parse_point_arg(s: str) -> PointsPrompt:
    """``--point x,y[,label][@frame]`` (label 1 = object, 0 = background) -> `PointsPrompt`.

    Several ``--point`` arguments for one object are combined by `merge_points`.
    """
    form = "--point x,y[,label][@frame] with label 1 (object) or 0 (background)"
    body, frame = _split_frame(s, "points", form)
    values = _numbers(body, (2, 3), "points", form, s)
    label = 1 if len(values) == 2 else values[2]
    if label not in (0.0, 1.0):
        raise PromptError(
            f"point label {label:g} is neither 1 nor 0",
            f"write {form}",
            kind="points",
            value=repr(s),
        )
    return PointsPrompt(points=[(values[0], values[1])], labels=[int(label)], frame=frame)


def merge_points(prompts: Sequence[Prompt]) -> list[Prompt]:
    """Join the `PointsPrompt` of one frame and label into one object (the clicks of repeated
    ``--point`` arguments); other prompts pass unchanged, order kept by first occurrence."""
    out: list[Prompt] = []
    merged: dict[tuple[int, str | None], PointsPrompt] = {}
    for p in prompts:
        if not isinstance(p, PointsPrompt):
            out.append(p)
            continue
        key = (p.frame, p.label)
        if key in merged:
            merged[key].points.extend(p.points)
            merged[key].labels.extend(p.labels)
        else:
            merged[key] = PointsPrompt(
                points=list(p.points), labels=list(p.labels), frame=p.frame, label=p.label
            )
            out.append(merged[key])
    return out


def parse_mask_arg(s: str) -> MaskPrompt:
    """``--mask PNG[@frame]`` -> `MaskPrompt` (palette PNG: every non-zero id is an object; a
    0/255 PNG is one object)."""
    body, frame = _split_frame(s, "mask", "--mask mask.png[@frame]", path=True)
    return MaskPrompt.from_file(body, frame=frame)


def parse_text_arg(s: str) -> TextPrompt:
    """``--text "person, red car"`` -> `TextPrompt`."""
    return TextPrompt(text=s.strip())


def parse_exemplar_arg(s: str, threshold: float = 0.5) -> ExemplarPrompt:
    """``--exemplar ref.jpg:x0,y0,x1,y1[@frame]`` -> `ExemplarPrompt`."""
    form = "--exemplar ref.jpg:x0,y0,x1,y1[@frame]"
    body, frame = _split_frame(s, "exemplar", form)
    image, sep, coords = body.rpartition(":")
    if not sep or not image:
        raise PromptError(
            "no box after the image path", f"write {form}", kind="exemplar", value=repr(s)
        )
    x0, y0, x1, y1 = _numbers(coords, (4,), "exemplar", form, s)
    path = Path(image).expanduser()
    if not path.is_file():
        raise PromptError(
            f"reference image not found: {path}",
            "give an existing image file",
            kind="exemplar",
            value=repr(s),
        )
    return ExemplarPrompt(
        image=str(path.resolve()), box=(x0, y0, x1, y1), threshold=threshold, frame=frame
    )


def parse_detections_arg(s: str) -> DetectionsPrompt:
    """``--detections det.txt`` (MOTChallenge) or ``det.json`` -> `DetectionsPrompt`."""
    return DetectionsPrompt.from_file(s.strip())
