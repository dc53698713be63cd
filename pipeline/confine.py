"""Where input that came over the network (a queued job, a control message) may read from.

A job's source and the files its prompts name (mask PNGs, detection files, exemplar images) are
read by the worker, with the worker's rights. So a path from the queue must lie under one of the
worker's ``worker.allowed_roots`` (after ``..`` and symbolic links are resolved), and a URL must
use one of ``worker.allowed_schemes``. Anything else is refused before it is opened. What a user
types on their own command line (``dinotrack run``) is not confined.

`confined` makes a `Confinement` the active one for the prompt parsers of this thread
(`pipeline.prompts.base.resolve_path` asks `active`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from pipeline.redact import redact_url

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class Refused(ValueError):
    """A path or URL outside what the worker allows; the message says which and how to allow it."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem} — {fix}")


@dataclass(frozen=True)
class Confinement:
    """The folders (or files) and URL schemes input from the queue may use."""

    roots: tuple[Path, ...]
    schemes: frozenset[str]

    @classmethod
    def of(cls, roots: Iterable[Path] | None, schemes: Iterable[str]) -> Confinement:
        """From settings: ``roots`` None means the current folder."""
        chosen = [Path.cwd()] if roots is None else list(roots)
        return cls(tuple(Path(r).expanduser().resolve() for r in chosen),
                   frozenset(s.lower() for s in schemes))  # fmt: skip

    def path(self, value: str | Path, what: str = "file") -> Path:
        """``value`` resolved (relative to the current folder), if it lies under a root."""
        resolved = Path(value).expanduser().resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots) or "none"
            raise Refused(
                f"{what} {str(value)!r} is outside the folders this worker reads for queued jobs "
                f"({allowed})",
                "put it there, or add its folder to DINOTRACK_WORKER__ALLOWED_ROOTS",
            )
        return resolved

    def allows(self, value: str | Path) -> bool:
        """Whether `path` accepts ``value``."""
        try:
            self.path(value)
        except Refused:
            return False
        return True

    def source(self, uri: str) -> str:
        """The source to open for ``uri``: the URL itself, or the resolved absolute path.

        An absolute path is what gets opened, so that FFmpeg never reads a path as a protocol
        (``concat:``, ``subfile,``, ``file:`` ...).
        """
        match = _URL.match(uri)
        if match is None:
            return str(self.path(uri, "source"))
        scheme = match.group(1).lower()
        if scheme not in self.schemes:
            allowed = ", ".join(sorted(self.schemes)) or "none"
            raise Refused(
                f"source {redact_url(uri)!r} uses the URL scheme {scheme!r}, which this worker "
                f"does not open for queued jobs (allowed: {allowed})",
                "use one of those, or add it to DINOTRACK_WORKER__ALLOWED_SCHEMES",
            )
        return uri


_ACTIVE: ContextVar[Confinement | None] = ContextVar("dinotrack_confinement", default=None)


def active() -> Confinement | None:
    """The confinement input is parsed under now (None: unconfined, e.g. `dinotrack run`)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def confined(confinement: Confinement) -> Iterator[Confinement]:
    """Parse prompts under ``confinement`` inside the ``with`` block (this thread only)."""
    token = _ACTIVE.set(confinement)
    try:
        yield confinement
    finally:
        _ACTIVE.reset(token)
