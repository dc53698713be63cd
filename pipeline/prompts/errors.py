"""`PromptError`: a prompt that cannot be used, with a message that names it and says what to do."""

from __future__ import annotations

from typing import Any


class PromptError(ValueError):
    """A bad prompt.

    The message reads ``prompt <index> (<kind> <value>): <problem> — <fix>``; the index is the
    prompt's position in its list (left out when unknown, e.g. for a single CLI argument).

    Attributes:
        problem: What is wrong.
        fix: What the user should do.
        kind: The prompt kind ("box", "mask", ...) or None when the kind itself is unknown.
        index: Position of the prompt in its list, or None.
        value: A short rendering of the offending value (e.g. ``[10, 20, 5, 40]``).
        errors: For an error that gathers several (a whole prompts file), the individual errors.
    """

    def __init__(
        self,
        problem: str,
        fix: str,
        *,
        kind: str | None = None,
        index: int | None = None,
        value: str | None = None,
        errors: list[PromptError] | None = None,
    ) -> None:
        self.problem = problem
        self.fix = fix
        self.kind = kind
        self.index = index
        self.value = value
        self.errors = list(errors or [])
        super().__init__(str(self))

    def at(self, index: int | None = None, kind: str | None = None) -> PromptError:
        """A copy that names the prompt's position (and kind, when this one lacks it)."""
        return PromptError(
            self.problem,
            self.fix,
            kind=self.kind or kind,
            index=self.index if index is None else index,
            value=self.value,
            errors=self.errors,
        )

    def __str__(self) -> str:
        what = " ".join(p for p in (self.kind, self.value) if p)
        if self.index is not None:
            where = f"prompt {self.index}" + (f" ({what})" if what else "")
        elif self.kind or self.value:
            where = " ".join(p for p in (self.kind, "prompt", self.value) if p)
        else:
            return f"{self.problem} — {self.fix}"
        return f"{where}: {self.problem} — {self.fix}"

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "kind": self.kind,
            "index": self.index,
            "value": self.value,
            "errors": self.errors,
        }
        return (_rebuild, (self.problem, self.fix, kwargs))


def _rebuild(problem: str, fix: str, kwargs: dict[str, Any]) -> PromptError:
    return PromptError(problem, fix, **kwargs)


class PromptsError(PromptError):
    """Several bad prompts at once (e.g. a prompts file); ``errors`` holds each one."""

    def __str__(self) -> str:
        if not self.errors:
            return super().__str__()
        head = f"{self.problem} — {self.fix}"
        return head + "".join(f"\n  - {e}" for e in self.errors)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_many, (self.problem, self.fix, self.errors))


def _rebuild_many(problem: str, fix: str, errors: list[PromptError]) -> PromptsError:
    return PromptsError(problem, fix, errors=errors)
