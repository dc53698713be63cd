"""`PromptArgs`: the prompt options of `run`, `submit` and `prompt`, declared once.

A command takes ``prompt_args: PromptArgs`` and is decorated with `with_prompt_args`, which puts
the dataclass's fields into the command's signature as options (typer sees ``--box``, ``--mask``
...) and hands the command one `PromptArgs`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.commands.options import (
    BoxOpt,
    DetectionsOpt,
    ExemplarOpt,
    ExemplarThresholdOpt,
    MaskOpt,
    PointOpt,
    PromptsOpt,
    TextOpt,
)


@dataclass
class PromptArgs:
    """The prompt options as given on the command line."""

    box: BoxOpt = field(default_factory=list)
    mask: MaskOpt = field(default_factory=list)
    point: PointOpt = field(default_factory=list)
    text: TextOpt = field(default_factory=list)
    exemplar: ExemplarOpt = field(default_factory=list)
    exemplar_threshold: ExemplarThresholdOpt = 0.5
    detections: DetectionsOpt = None
    prompts: PromptsOpt = None

    def parse(self) -> list:
        """The prompts, in this order: file, boxes, masks, points, texts, exemplars, detections
        (parsed by `pipeline.prompts`; a bad one raises `PromptError`)."""
        from pipeline.prompts import (
            load_prompts_file,
            merge_points,
            parse_box_arg,
            parse_detections_arg,
            parse_exemplar_arg,
            parse_mask_arg,
            parse_point_arg,
            parse_text_arg,
        )

        prompts: list = []
        if self.prompts is not None:
            prompts.extend(load_prompts_file(Path(self.prompts)))
        prompts.extend(parse_box_arg(b) for b in self.box)
        prompts.extend(parse_mask_arg(m) for m in self.mask)
        prompts.extend(merge_points([parse_point_arg(p) for p in self.point]))
        prompts.extend(parse_text_arg(t) for t in self.text)
        prompts.extend(parse_exemplar_arg(e, self.exemplar_threshold) for e in self.exemplar)
        if self.detections:
            prompts.append(parse_detections_arg(self.detections))
        return prompts


def _option_parameters() -> list[inspect.Parameter]:
    hints = typing.get_type_hints(PromptArgs, include_extras=True)
    params = []
    for f in dataclasses.fields(PromptArgs):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[f.name]
            )
        )
    return params


def with_prompt_args(command: Callable[..., Any]) -> Callable[..., Any]:
    """Replace the command's ``prompt_args`` parameter by the `PromptArgs` options."""
    signature = inspect.signature(command, eval_str=True)
    names = [f.name for f in dataclasses.fields(PromptArgs)]
    params: list[inspect.Parameter] = []
    for p in signature.parameters.values():
        if p.name == "prompt_args":
            params.extend(_option_parameters())
        else:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        args = PromptArgs(**{n: kwargs.pop(n) for n in names})
        return command(prompt_args=args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
