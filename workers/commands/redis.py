"""``dinotrack redis``: start (or stop) the embedded Redis of a data folder for consumers."""

from __future__ import annotations

from typing import Annotated

import typer

from workers.commands.options import DataDirOpt, DebugOpt


def redis_server(
    stop: Annotated[bool, typer.Option("--stop", help="Save and stop the server instead.")] = False,
    data_dir: DataDirOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Start the embedded Redis of the data folder and leave it running; print its URL.

    Its address never changes for a folder: unix://<data-dir>/redis.sock (redis-py:
    ``redis.Redis(unix_socket_path=".dinotrack/redis.sock")``). `--stop` saves and stops it.
    """
    from workers.commands.console import err, guarded, settings_from
    from workers.embedded_redis import EmbeddedRedis

    with guarded(debug):
        server = EmbeddedRedis(settings_from(None, data_dir=data_dir).data_dir)
        if stop:
            was = server.stop_running()
            what = "stopped" if was else "was not running"
            err.print(f"embedded Redis in {server.data_dir} {what}", highlight=False, markup=False)
            return
        url = server.start()
        where = "started" if server.owned else "running"
        server.detach()
        print(url)
        err.print(f"embedded Redis {where} (data in {server.data_dir}); stop it with "
                  "`dinotrack redis --stop`", highlight=False, markup=False)  # fmt: skip
