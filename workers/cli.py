"""The ``dinotrack`` command line: the app assembled from `workers.commands`, and `main`.

Each command group lives in its own module under ``workers/commands/``; importing them is cheap
(heavy modules are imported inside the commands that need them).
"""

from __future__ import annotations

import typer

from workers.commands.control import prompt, status, stop
from workers.commands.eval_davis import davis
from workers.commands.eval_lt import lt
from workers.commands.eval_mot import mot
from workers.commands.info import probe, show_config
from workers.commands.models import models_app
from workers.commands.queue import submit, worker
from workers.commands.redis import redis_server
from workers.commands.render import render
from workers.commands.results import export, tail
from workers.commands.run import run

app = typer.Typer(
    help="Track objects in videos with self-supervised patch features; results go to Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: [@frame], [file stem] print as written
)
eval_app = typer.Typer(help="Score the tracker on benchmark data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")

for command in (run, probe, tail, export, submit, worker, status, stop, prompt, render):
    app.command()(command)
app.command("config")(show_config)
app.command("redis")(redis_server)
eval_app.command("davis")(davis)
eval_app.command("mot")(mot)
eval_app.command("lt")(lt)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
