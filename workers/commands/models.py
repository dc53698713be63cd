"""``dinotrack models list`` and ``pull``: the known backbones and their weights."""

from __future__ import annotations

from typing import Annotated

import typer

from workers.commands.console import guarded, out, say, settings_from
from workers.commands.options import ConfigOpt, DebugOpt

models_app = typer.Typer(help="List and fetch model weights.", no_args_is_help=True)


@models_app.command("list")
def models_list(
    config: ConfigOpt = None,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Check sha256 where one is known.")
    ] = True,
) -> None:
    """List every backbone, segmenter and text detector: found / missing / verified here."""
    from rich.table import Table
    from rich.text import Text

    from pipeline.models.inventory import model_rows

    settings = settings_from(config)
    table = Table("kind", "model", "weights", "path", "detail")
    for row in model_rows(settings.backbone, settings.segmenter, settings.sam, verify=verify):
        table.add_row(row.kind, row.name, row.status, Text(str(row.path or "")), Text(row.detail))
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
