"""What `run` and `submit` settle before any work: the source id, the settings a job overrides,
prompts checked against the frame, the backbone actually used."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from workers.commands.console import err, fail, say


def job_overrides(backbone, segmenter, stride, start, end) -> dict[str, Any]:
    """The settings a job's model and range options override (None: keep the defaults)."""
    return {"segmenter": segmenter, "backbone": {"name": backbone},
            "source": {"stride": stride, "start": start, "end": end}}  # fmt: skip


def default_source_id(source: str) -> str:
    """The file or folder stem, with anything but letters, digits, ``_.-`` replaced by ``-``."""
    stem = Path(source.rstrip("/")).stem or "source"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)


def check_prompts(prompts: list, width: int, height: int) -> list:
    """Validate prompts against the frame size; any invalid prompt stops the run before work."""
    from pipeline.prompts import validate_prompts

    valid, errors = validate_prompts(prompts, width, height)
    if errors:
        for e in errors[:-1]:
            say(f"error: {e}")
        fail(str(errors[-1]))
    return valid


def resolve_backbone(settings) -> None:
    """Replace ``auto`` by the backbone actually used, saying why on stderr once."""
    from pipeline.models.registry import resolve_backbone_name

    name, note = resolve_backbone_name(settings.backbone)
    if note:
        say(note, err)
    settings.backbone.name = name


def frame_range(start, end, frames: int | None, fps: float | None) -> tuple[int, int | None]:
    """The ``[lo, hi)`` frame indices ``--start``/``--end`` select (hi None: to the end), refusing
    a start at or after the end. Times are turned into indices with the source's mean fps."""
    from pipeline.sources.positions import parse_position

    def index(value, default: int | None) -> int | None:
        position = parse_position(value)
        if position is None:
            return default
        if position.frame is not None:
            return position.frame if frames is None else min(position.frame, frames)
        if fps is None:
            return None
        found = math.ceil(position.seconds * fps - 1e-6)
        return found if frames is None else min(found, frames)

    lo, hi = index(start, 0) or 0, index(end, frames)
    if hi is not None and lo >= hi:
        fail(f"--start {start} is not before --end {end}: the range holds no frame — "
             "give a start before the end")  # fmt: skip
    return lo, hi


def refuse_live_range(uri: str, given: tuple) -> None:
    """--start, --end, --stride have no meaning on a live URL: refused, not silently ignored."""
    if any(v is not None for v in given):
        fail(f"--start, --end and --stride select frames of a file or an image folder; {uri} is "
             "a live stream — drop them (record the stream to pick a range)")  # fmt: skip


def check_job(info, prompts: list, source_config, given: tuple, overlap: int = 0) -> None:
    """Refuse, before any work, what would run for nothing or silently differently: range options
    on a live URL, an empty range, prompts on frames the range leaves out, a negative overlap.

    ``given`` holds the command's --start, --end, --stride (None: not given); the range checked is
    the settings' (file, environment and options together).
    """
    if info.kind == "live":
        refuse_live_range(info.uri, given)
    if overlap < 0:
        fail(f"--overlap {overlap} must be 0 or more frames")
    start, end = source_config.start, source_config.end
    lo, hi = frame_range(start, end, info.frames, info.fps)
    if hi is None:  # a live source: every frame from the first comes
        return
    step = source_config.stride if source_config.target_fps is None else 1
    processed = range(lo, hi, step)
    for p in prompts:
        if not any(p.applies_at(i).acts for i in processed):
            every = f", every {step}th" if step > 1 else ""
            fail(
                f"the {p.kind} prompt {p.describe()} at frame {p.frame} acts on none of the "
                f"frames processed (frames {lo} to {hi - 1}{every}) — move it onto one"
            )
