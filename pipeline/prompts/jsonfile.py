"""The prompts JSON format: ``{"prompts": [{"kind": ..., ...}, ...]}`` (see docs/prompts.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.limits import MAX_PROMPTS_FILE_BYTES, LimitError, check_size, load_json
from pipeline.prompts.base import KINDS, Prompt
from pipeline.prompts.errors import PromptError, PromptsError


def prompt_from_json(obj: Any, base_dir: Path | None = None) -> Prompt:
    """One prompt from its dict (``{"kind": "box", "box": [...], ...}``)."""
    if not isinstance(obj, dict):
        raise PromptError(
            f"{obj!r:.60} is not an object", 'give {"kind": "box", "box": [x0, y0, x1, y1]}'
        )
    kind = obj.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise PromptError(
            f"unknown kind {kind!r}",
            f"use one of {', '.join(sorted(KINDS))}",
        )
    return cls.from_json(obj, base_dir)


def prompts_from_json(obj: Any, base_dir: Path | None = None) -> list[Prompt]:
    """Prompts from ``{"prompts": [...]}`` (or a bare list, or one prompt dict).

    Relative paths resolve against ``base_dir`` (default: the current folder). Every entry is read;
    if any is bad, one `PromptError` is raised whose ``errors`` name each bad entry by index.
    """
    if isinstance(obj, dict) and "prompts" in obj:
        items = obj["prompts"]
    elif isinstance(obj, dict) and "kind" in obj:
        items = [obj]
    else:
        items = obj
    if not isinstance(items, list):
        raise PromptError(
            f"{type(obj).__name__} is not a prompts document",
            'give {"prompts": [{"kind": "box", "box": [x0, y0, x1, y1]}, ...]}',
        )
    prompts: list[Prompt] = []
    errors: list[PromptError] = []
    for i, item in enumerate(items):
        try:
            prompts.append(prompt_from_json(item, base_dir))
        except PromptError as err:
            kind = item.get("kind") if isinstance(item, dict) else None
            errors.append(err.at(i, kind if isinstance(kind, str) and kind in KINDS else None))
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise PromptsError(
            f"{len(errors)} of {len(items)} prompts are invalid",
            "fix each one listed",
            errors=errors,
        )
    return prompts


def prompts_to_json(prompts: Sequence[Prompt]) -> dict[str, Any]:
    """``{"prompts": [p.to_json(), ...]}``; `prompts_from_json` reads it back losslessly."""
    return {"prompts": [p.to_json() for p in prompts]}


def load_prompts_file(path: str | Path) -> list[Prompt]:
    """Read a prompts JSON file; relative paths inside resolve against its folder."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PromptError(
            f"prompts file not found: {path}", "give the path of an existing prompts JSON file"
        )
    try:
        check_size(f"prompts file {path.name}", path.stat().st_size, MAX_PROMPTS_FILE_BYTES)
        obj = load_json(path.read_text(encoding="utf-8"), f"prompts file {path.name}",
                        MAX_PROMPTS_FILE_BYTES)  # fmt: skip
    except LimitError as exc:
        raise PromptError(str(exc).split(" — ")[0], str(exc).split(" — ")[-1]) from exc
    except json.JSONDecodeError as exc:
        raise PromptError(
            f"prompts file {path.name} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}",
            "fix the JSON syntax (see docs/prompts.md for the format)",
        ) from exc
    except UnicodeDecodeError as exc:
        raise PromptError(
            f"prompts file {path.name} is not UTF-8 text ({exc})", "save it as UTF-8"
        ) from exc
    return prompts_from_json(obj, path.resolve().parent)
