"""`validate_prompts`: refuse bad prompts before any work starts, keep the good ones."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.prompts.base import Prompt
from pipeline.prompts.errors import PromptError


def validate_prompts(
    prompts: Sequence[Prompt], width: int, height: int
) -> tuple[list[Prompt], list[PromptError]]:
    """Check every prompt against frames of ``width`` x ``height``.

    Returns:
        The valid prompts (in order) and one `PromptError` per invalid prompt, whose message names
        the prompt's kind, its index in ``prompts``, its value and the fix.
    """
    valid: list[Prompt] = []
    errors: list[PromptError] = []
    for i, prompt in enumerate(prompts):
        try:
            prompt.check(width, height)
        except PromptError as err:
            errors.append(err.at(i, prompt.kind))
        else:
            valid.append(prompt)
    return valid, errors
