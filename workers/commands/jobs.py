"""What `run` and `submit` settle before any work: the source id, the settings a job overrides,
prompts checked against the frame, the backbone actually used."""

from __future__ import annotations

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

    name, note = resolve_backbone_name(settings.backbone.name)
    if note:
        say(note, err)
    settings.backbone.name = name
