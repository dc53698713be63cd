"""``dinotrack models list`` and ``pull``: the known backbones and their weights."""

from __future__ import annotations

from typing import Annotated

import typer

from workers.commands.console import guarded, out, say
from workers.commands.options import DebugOpt

models_app = typer.Typer(help="List and fetch model weights.", no_args_is_help=True)


@models_app.command("list")
def models_list() -> None:
    """List the known backbones and whether their weights are available here."""
    from rich.table import Table

    from pipeline.models.registry import BACKBONES
    from pipeline.models.weights import weights_available

    table = Table("backbone", "weights here")
    for name in BACKBONES:
        table.add_row(name, "yes" if weights_available(name) else "no")
    out.print(table)


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Backbone name, e.g. dinov2-small.")],
    debug: DebugOpt = False,
) -> None:
    """Download a model's weights into the cache (on a machine with internet)."""
    with guarded(debug):
        from pipeline.models.weights import pull

        say(f"{name}: {pull(name)}")
