"""Bounds on untrusted input, in one place (documented in docs/protocol.md, "Limits").

Every input from a user or the jobs queue is checked against these before it is decoded, so a
small file cannot ask for gigabytes (a mask RLE declaring 100000x100000, an image header declaring
20000x20000) or crash the parser (JSON nested 100,000 levels deep).
"""

from __future__ import annotations

import json
from typing import Any

MAX_PROMPTS_FILE_BYTES = 16 * 1024 * 1024
"""A prompts JSON file (masks travel in it as RLE)."""
MAX_JOB_BYTES = 16 * 1024 * 1024
"""The ``data`` field of one job entry of ``dinotrack:jobs``."""
MAX_JSON_DEPTH = 32
"""Nesting of lists and objects in a prompts file or a job (the formats need fewer than 8)."""
MAX_LABEL_CHARS = 256
"""A prompt's label (it is repeated into every frame entry of its tracks)."""
MAX_MASK_PIXELS = 8192 * 8192
"""Pixels a mask prompt may declare (its size must then equal the frame size)."""
MAX_DECODE_FACTOR = 4
"""An image is decoded only if its header declares at most this many times ``max_pixels``
(it is then downscaled to ``max_pixels``)."""


class LimitError(ValueError):
    """An input beyond one of the limits above; the message names the input and the limit."""


def check_size(what: str, n_bytes: int, limit: int) -> None:
    if n_bytes > limit:
        raise LimitError(
            f"{what} is {n_bytes:,} bytes, above the limit of {limit:,} — split it or make it "
            "smaller (limits: docs/protocol.md)"
        )


def depth(obj: Any) -> int:
    """Nesting depth of lists and dicts (iterative: no recursion limit)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def load_json(text: str | bytes, what: str, max_bytes: int) -> Any:
    """Parse JSON within the size and depth limits; raises LimitError, or JSONDecodeError."""
    check_size(what, len(text), max_bytes)
    try:
        obj = json.loads(text)
    except RecursionError:
        obj = None
        too_deep = True
    else:
        too_deep = depth(obj) > MAX_JSON_DEPTH
    if too_deep:
        raise LimitError(
            f"{what} nests lists or objects deeper than {MAX_JSON_DEPTH} levels — "
            "flatten it (the format needs fewer; see docs/prompts.md)"
        )
    return obj


def check_label(label: str) -> None:
    if len(label) > MAX_LABEL_CHARS:
        raise LimitError(
            f"label of {len(label):,} characters is above the limit of {MAX_LABEL_CHARS} — "
            "give a short name such as 'dog'"
        )


def check_mask_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0 or height * width > MAX_MASK_PIXELS:
        raise LimitError(
            f"mask size {width}x{height} is outside 1..{MAX_MASK_PIXELS:,} pixels — "
            "give a mask of the frame's own size"
        )


def check_image_size(width: int, height: int, max_pixels: int) -> None:
    limit = max_pixels * MAX_DECODE_FACTOR
    if width * height > limit:
        raise LimitError(
            f"header declares {width}x{height} pixels, above {MAX_DECODE_FACTOR} x max_pixels "
            f"({limit:,})"
        )
