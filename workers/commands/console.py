"""The CLI's two consoles, its one-line errors and the guard every command runs in.

User-provided text (paths, source ids, error messages) is printed through `say` / `fail`, which
escape rich markup and turn emoji codes off: ``clips/[/bad]`` and ``:dog:`` print as written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True, emoji=False, highlight=False)
out = Console(emoji=False, highlight=False)


def say(message: str, console: Console = err) -> None:
    """Print plain text (no markup, no emoji), wrapped only by the terminal."""
    console.print(escape(message), soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit."""
    from pipeline.redact import redact

    err.print(f"[bold red]error:[/] {escape(redact(message))}", soft_wrap=True)
    raise typer.Exit(code)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextlib.contextmanager
def guarded(debug: bool, log_warnings: bool = False) -> Iterator[None]:
    """User-facing errors become one line and exit 2 (tracebacks with --debug).

    Logs go to stderr (JSON lines when it is not a terminal): errors only for one-shot commands,
    whose failures are already printed, warnings too for the worker.
    """
    from workers.errors import user_errors
    from workers.logs import setup_logging

    setup_logging("DEBUG" if debug else "WARNING" if log_warnings else "ERROR")
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except user_errors() as exc:
        if debug:
            raise
        fail(one_line(exc))
    except Exception as exc:  # unexpected: still one line unless --debug
        if debug:
            raise
        fail(f"{type(exc).__name__}: {one_line(exc)} (run again with --debug for details)", 1)


def settings_from(config: Path | None, **overrides: Any):
    """The effective settings: defaults < file < DINOTRACK_* environment < these overrides."""
    from pipeline.settings import load_settings

    return load_settings(config, **overrides)
