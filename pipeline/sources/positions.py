"""Range positions: frame numbers or ``HH:MM:SS(.fff)`` timestamps, resolved against frame PTS."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True)
class Position:
    """A point in a source: exactly one of ``frame`` (index) or ``seconds`` (PTS) is set."""

    frame: int | None = None
    seconds: float | None = None


def parse_position(value: str | int | None) -> Position | None:
    """Parse a range bound.

    Args:
        value: A frame number (int or digits), a ``HH:MM:SS(.fff)`` or ``MM:SS(.fff)`` timestamp,
            or None.

    Returns:
        The position, or None for None.

    Raises:
        ValueError: When the value is neither a frame number nor a timestamp.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"range bound {value!r} is not a frame number or HH:MM:SS timestamp")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"range bound {value} is negative — use a frame number >= 0")
        return Position(frame=value)
    text = value.strip()
    if text.isdigit():
        return Position(frame=int(text))
    match = _TIME.match(text)
    if match is None:
        raise ValueError(
            f"range bound {value!r} is not a frame number or a HH:MM:SS(.fff) timestamp "
            "— write e.g. 250 or 00:10:00"
        )
    hours, minutes, seconds = match.groups()
    if int(minutes) >= 60 or float(seconds) >= 60:
        raise ValueError(f"range bound {value!r} has minutes or seconds >= 60")
    return Position(seconds=int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds))


def position_to_index(position: Position, pts: Sequence[float]) -> int:
    """The first frame index at or after ``position`` (len(pts) when past the end).

    Args:
        position: A frame number or a time.
        pts: Presentation times of all frames, non-decreasing.
    """
    if position.frame is not None:
        return min(position.frame, len(pts))
    assert position.seconds is not None
    return bisect.bisect_left(pts, position.seconds - 1e-6)


def resolve_range(
    start: str | int | None, end: str | int | None, pts: Sequence[float]
) -> tuple[int, int]:
    """The ``[lo, hi)`` index range that ``start`` / ``end`` select among frames with ``pts``."""
    lo_pos, hi_pos = parse_position(start), parse_position(end)
    lo = 0 if lo_pos is None else position_to_index(lo_pos, pts)
    hi = len(pts) if hi_pos is None else position_to_index(hi_pos, pts)
    return lo, max(lo, hi)
