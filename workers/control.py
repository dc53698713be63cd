"""Checks a live control message before it reaches the tracker: a bad one is refused, not fatal.

`dinotrack prompt` (or any producer) writes to ``dinotrack:<source-id>:control`` while the source
runs. Each ``add_prompts`` / ``remove_track`` is checked here against the source's frame size and
the tracks published so far; what does not pass becomes a ``prompt.refused`` event naming the
message and the fix, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ControlCheck:
    """What to apply of one control message, and why the rest was refused."""

    prompts: list[dict[str, Any]] = field(default_factory=list)
    track_id: int | None = None
    refused: list[str] = field(default_factory=list)


def check_control(
    msg: dict[str, Any], width: int, height: int, known_tracks: Collection[int]
) -> ControlCheck:
    """The valid part of an ``add_prompts`` or ``remove_track`` message (``stop`` needs none)."""
    from pipeline.prompts import PromptError, prompts_from_json, validate_prompts

    out = ControlCheck()
    if msg["op"] == "add_prompts":
        raw = msg.get("prompts")
        if not isinstance(raw, list):
            out.refused.append(f"add_prompts needs 'prompts' as a list, got {raw!r:.60}")
            return out
        parsed = []
        for i, item in enumerate(raw):
            try:
                parsed.extend(prompts_from_json({"prompts": [item]}))
            except PromptError as exc:
                kind = item.get("kind") if isinstance(item, dict) else None
                out.refused.append(str(exc.at(i, kind)))
        valid, errors = validate_prompts(parsed, width, height)
        out.refused.extend(str(e) for e in errors)
        out.prompts = [p.to_json() for p in valid]
    elif msg["op"] == "remove_track":
        tid = msg.get("track_id")
        if isinstance(tid, bool) or not isinstance(tid, int):
            out.refused.append(
                f"remove_track needs an integer 'track_id', got {tid!r:.60} — see `dinotrack tail`"
            )
        elif tid not in known_tracks:
            known = ", ".join(map(str, sorted(known_tracks))) or "none yet"
            out.refused.append(f"track {tid} is not known for this source (tracks: {known})")
        else:
            out.track_id = tid
    return out
