"""``dinotrack status``, ``stop`` and ``prompt``: watch and steer running sources."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from workers.commands.console import fail, guarded, out, say, settings_from
from workers.commands.options import ConfigOpt, DataDirOpt, DebugOpt, JsonOpt, RedisOpt
from workers.commands.prompt_args import PromptArgs, with_prompt_args


def status(
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """A table of every source: state, frames, fps, lag, errors."""
    from rich.table import Table
    from rich.text import Text

    with guarded(debug):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir)
        from pipeline.outputs.redis_streams import connect
        from workers.redis_target import redis_url_for
        from workers.service import source_states

        with redis_url_for(settings, announce=not as_json) as url:
            rows = source_states(connect(url))
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        table = Table()
        for column in ("source", "state", "frames", "fps", "lag", "dropped", "restarts"):
            table.add_column(column, no_wrap=True)  # narrow columns keep their width
        table.add_column("error", overflow="fold", min_width=20)  # a long error wraps instead
        for r in rows:
            done, total = r.get("frames_done", ""), r.get("total", "")
            table.add_row(Text(r["source_id"]), r.get("status", ""),
                          f"{done}/{total}" if total else done, r.get("fps", ""), r.get("lag", ""),
                          r.get("dropped", ""), r.get("restarts", ""),
                          Text(r.get("last_error", "")))  # fmt: skip
        out.print(table)


def stop(
    source_id: Annotated[str, typer.Argument(help="Source to stop.")],
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Stop a running or queued source (published results stay)."""
    with guarded(debug):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir)
        from pipeline.outputs.redis_streams import connect
        from workers.redis_target import redis_url_for
        from workers.service import request_stop

        with redis_url_for(settings) as url:
            was = request_stop(connect(url), source_id)
        say(f"stop sent to '{source_id}' (was {was})", out)


@with_prompt_args
def prompt(
    source_id: Annotated[str, typer.Argument(help="Running source to change.")],
    prompt_args: PromptArgs,
    remove_track: Annotated[
        list[int], typer.Option("--remove-track", help="Stop following this track id.")
    ] = [],  # noqa: B006
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Add prompts to, or remove tracks from, a running source (dinotrack:<id>:control)."""
    with guarded(debug):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir)
        from pipeline.outputs.redis_streams import connect
        from pipeline.prompts import prompts_to_json
        from pipeline.wire import control_key, encode_control
        from workers.redis_target import redis_url_for

        prompt_list = prompt_args.parse()
        if not prompt_list and not remove_track:
            fail("nothing to send — give prompts (--box, --mask, ...) or --remove-track ID")
        with redis_url_for(settings) as url:
            client = connect(url)
            if prompt_list:
                payload = prompts_to_json(prompt_list)["prompts"]
                client.xadd(control_key(source_id), encode_control("add_prompts", prompts=payload))
            for track_id in remove_track:
                client.xadd(
                    control_key(source_id), encode_control("remove_track", track_id=track_id)
                )
        say(f"sent {len(prompt_list)} prompt(s), {len(remove_track)} removal(s) to "
            f"'{source_id}'", out)  # fmt: skip
