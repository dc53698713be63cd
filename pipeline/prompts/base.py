"""The `Prompt` base class, the registry of prompt kinds and the JSON field readers they share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from pipeline.confine import Refused, active
from pipeline.prompts.errors import PromptError

if TYPE_CHECKING:
    from pipeline.prompts.plan import MaskAsk, PromptFrame
    from pipeline.types import Observation

Box = tuple[float, float, float, float]

#: Every prompt kind by its JSON name, filled as the kinds are defined.
KINDS: dict[str, type[Prompt]] = {}

from pipeline.limits import MAX_LABEL_CHARS  # noqa: E402

COMMON_KEYS = frozenset({"kind", "frame", "label"})


class Application(NamedTuple):
    """Whether a prompt acts on a frame, and whether as its first application (a first application
    is checked against the frame, and its objects have origin "prompt")."""

    acts: bool
    first: bool


@dataclass(kw_only=True)
class Prompt:
    """What the user (or an external detector) says about the objects of a video.

    Attributes:
        frame: Index of the frame the prompt applies to (default 0, the first frame).
        label: Optional user label given to the objects it makes (e.g. "dog").
    """

    kind: ClassVar[str] = ""
    #: JSON keys of this kind besides ``kind``, ``frame`` and ``label``.
    keys: ClassVar[frozenset[str]] = frozenset()
    #: Whether resolving the prompt needs a zero-shot text detector (`PromptFrame.text_detector`).
    needs_text_detector: ClassVar[bool] = False

    frame: int = 0
    label: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            KINDS[cls.kind] = cls

    # -- serialisation -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that `prompts_from_json` turns back into an equal prompt."""
        out: dict[str, Any] = {"kind": self.kind, **self._fields_to_json(), "frame": self.frame}
        if self.label is not None:
            out["label"] = self.label
        return out

    def _fields_to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, obj: dict[str, Any], base_dir: Path | None = None) -> Prompt:
        """Build the prompt from its JSON dict; relative paths resolve against ``base_dir``."""
        raise NotImplementedError

    # -- validation ----------------------------------------------------------------------------

    def check(self, width: int, height: int) -> None:
        """Raise `PromptError` when the prompt cannot apply to frames of ``width`` x ``height``."""
        raise NotImplementedError

    def describe(self) -> str:
        """Short rendering of the prompt's value for messages (e.g. ``[10, 20, 50, 80]``)."""
        raise NotImplementedError

    def error(self, problem: str, fix: str) -> PromptError:
        """A `PromptError` that names this prompt."""
        return PromptError(problem, fix, kind=self.kind, value=self.describe())

    # -- resolution ----------------------------------------------------------------------------

    def applies_at(self, frame_index: int) -> Application:
        """Whether the prompt acts on frame ``frame_index``: a prompt acts on its own frame only,
        as its first application."""
        own = frame_index == self.frame
        return Application(own, own)

    def plan(self, frame: PromptFrame, first: bool) -> list[Observation | MaskAsk]:
        """What the prompt says about ``frame``: observations it makes itself and the masks it asks
        the segmenter for, in order. ``first``: whether this is its first application.

        Raises:
            PromptError: The prompt cannot apply to this frame (e.g. a text prompt without a
                detector, an exemplar that matches nothing where it is first applied).
        """
        raise NotImplementedError


@dataclass(kw_only=True)
class RedetectingPrompt(Prompt):
    """A prompt that finds its objects again every ``redetect_every`` frames after its own (the
    re-detections are offered to the tracker as detections, not as new objects).

    Attributes:
        redetect_every: Find again every N frames after ``frame`` (default 0: only at ``frame``).
    """

    redetect_every: int = 0

    def applies_at(self, frame_index: int) -> Application:
        if frame_index == self.frame:
            return Application(True, True)
        every = self.redetect_every
        later = frame_index > self.frame and every > 0 and (frame_index - self.frame) % every == 0
        return Application(later, False)


# -- rendering ---------------------------------------------------------------------------------


def fmt_num(v: float) -> str:
    """A number as short text: ``10`` for 10.0, ``10.5`` for 10.5."""
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def fmt_seq(values: Sequence[Any]) -> str:
    """Numbers or nested number lists as ``[1, 2, 3]`` text, long lists shortened."""
    items = [fmt_seq(v) if isinstance(v, (list, tuple)) else fmt_num(v) for v in values[:6]]
    more = ", ..." if len(values) > 6 else ""
    return "[" + ", ".join(items) + more + "]"


# -- JSON readers ------------------------------------------------------------------------------


def _bad(kind: str, problem: str, fix: str, value: Any = None) -> PromptError:
    rendered = None if value is None else _render(value)
    return PromptError(problem, fix, kind=kind, value=rendered)


def _render(value: Any) -> str:
    if isinstance(value, (list, tuple)) and all(_is_number(v) for v in value):
        return fmt_seq(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_keys(kind: str, obj: dict[str, Any], keys: frozenset[str]) -> None:
    """Refuse keys a kind does not know (typos would otherwise be ignored silently)."""
    unknown = sorted(set(obj) - keys - COMMON_KEYS)
    if unknown:
        raise _bad(
            kind,
            f"unknown field(s) {', '.join(repr(k) for k in unknown)}",
            f"use only {', '.join(sorted(keys | COMMON_KEYS))}",
        )


def read_common(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The ``frame`` (int >= 0, default 0) and ``label`` (str or absent) of a prompt dict."""
    frame = obj.get("frame", 0)
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise _bad(kind, f"frame {frame!r} is not a frame index", "give an integer >= 0", frame)
    label = obj.get("label")
    if label is not None and not isinstance(label, str):
        raise _bad(kind, f"label {label!r} is not text", 'give a string such as "dog"', label)
    if label is not None and len(label) > MAX_LABEL_CHARS:
        raise _bad(kind, f"label of {len(label):,} characters is above the limit of "
                   f"{MAX_LABEL_CHARS}", 'give a short name such as "dog"')  # fmt: skip
    return {"frame": frame, "label": label}


def require(kind: str, obj: dict[str, Any], key: str, hint: str) -> Any:
    """``obj[key]`` or a `PromptError` saying the field is missing and how to give it."""
    if key not in obj:
        raise _bad(kind, f"missing field {key!r}", f'add "{key}": {hint}')
    return obj[key]


def read_number(kind: str, value: Any, name: str, lo: float | None = None) -> float:
    """A finite number (optionally >= ``lo``)."""
    if not _is_number(value) or (lo is not None and value < lo):
        need = "a number" + (f" >= {fmt_num(lo)}" if lo is not None else "")
        raise _bad(kind, f"{name} {value!r} is not {need}", f"give {name} as {need}", value)
    return float(value)


def read_int(kind: str, value: Any, name: str, lo: int = 0) -> int:
    """An integer >= ``lo``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise _bad(kind, f"{name} {value!r} is not an integer >= {lo}", f"give {name} >= {lo}")
    return int(value)


def read_box(kind: str, value: Any, name: str = "box") -> Box:
    """A box ``[x0, y0, x1, y1]`` of four finite numbers (its geometry is checked later)."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 4
        or not all(_is_number(v) for v in value)
    ):
        raise _bad(
            kind,
            f"{name} {_render(value)} is not four numbers",
            f'give "{name}": [x0, y0, x1, y1] in pixels',
        )
    x0, y0, x1, y1 = (float(v) for v in value)
    return x0, y0, x1, y1


def read_xy_list(kind: str, value: Any, name: str) -> list[tuple[float, float]]:
    """A non-empty list of ``[x, y]`` pairs."""
    ok = (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_number(v) for v in p)
            for p in value
        )
    )
    if not ok:
        raise _bad(
            kind,
            f"{name} {_render(value)} is not a non-empty list of [x, y] pairs",
            f'give "{name}": [[x, y], ...] in pixels',
        )
    return [(float(p[0]), float(p[1])) for p in value]


def resolve_path(value: Any, base_dir: Path | None, kind: str, name: str = "path") -> Path:
    """A file path: relative ones resolve against ``base_dir``; the file must exist."""
    if not isinstance(value, str) or not value:
        raise _bad(kind, f"{name} {value!r} is not a file path", f'give "{name}" as a string')
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if (confinement := active()) is not None:  # from the queue: only the allowed folders
        try:
            path = confinement.path(path, name)
        except Refused as exc:
            raise PromptError(exc.problem, exc.fix, kind=kind, value=repr(value)) from exc
    if not path.is_file():
        raise PromptError(
            f"file not found: {path}",
            "check the path (relative paths resolve against the prompts file's folder)",
            kind=kind,
            value=repr(value),
        )
    return path


def box_problem(box: Box, width: int, height: int) -> tuple[str, str] | None:
    """What is wrong with a box for a ``width`` x ``height`` frame, as (problem, fix), or None."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return (
            f"negative or zero size ({fmt_num(x1 - x0)} x {fmt_num(y1 - y0)})",
            "give the box as x0,y0,x1,y1 with x0 < x1 and y0 < y1 (corners, not width/height)",
        )
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return (
            f"outside the {width}x{height} frame",
            f"keep the box within 0..{width} x 0..{height}",
        )
    return None


def points_problem(
    points: Sequence[tuple[float, float]], width: int, height: int
) -> tuple[str, str] | None:
    """What is wrong with points for a ``width`` x ``height`` frame, as (problem, fix), or None."""
    for x, y in points:
        if not (0 <= x <= width and 0 <= y <= height):
            return (
                f"point ({fmt_num(x)}, {fmt_num(y)}) is outside the {width}x{height} frame",
                f"keep points within 0..{width} x 0..{height}",
            )
    return None
