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
    """A table of every source (state, frames, fps, lag), then each source's last error."""
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
        table = Table("source", "state", "frames", "fps", "lag", "dropped", "restarts")
        for typed in rows:
            r = {k: "" if v is None else str(v) for k, v in typed.items()}
            done, total = r.get("frames_done", ""), r.get("total", "")
            table.add_row(Text(r["source_id"]), r.get("status", ""),
                          f"{done}/{total}" if total else done, r.get("fps", ""), r.get("lag", ""),
                          r.get("dropped", ""), r.get("restarts", ""))  # fmt: skip
        out.print(table)
        for r in rows:  # errors on their own lines: a long one would squeeze the table
            if r.get("last_error"):
                say(f"{r['source_id']}: error: {r['last_error']}", out)


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
            check_target(client, source_id, remove_track)
            if prompt_list:
                payload = prompts_to_json(prompt_list)["prompts"]
                client.xadd(control_key(source_id), encode_control("add_prompts", prompts=payload))
            for track_id in remove_track:
                client.xadd(
                    control_key(source_id), encode_control("remove_track", track_id=track_id)
                )
        say(f"sent {len(prompt_list)} prompt(s), {len(remove_track)} removal(s) to "
            f"'{source_id}'", out)  # fmt: skip


RECENT_FRAMES = 500
"""`prompt --remove-track` looks for the track among this many last published frames."""


def check_target(client, source_id: str, remove_track: list[int]) -> None:
    """Refuse a control message nobody acts on: an unknown or ended source, an unknown track."""
    from pipeline.outputs.redis_streams import last_frame_index, read_frames
    from pipeline.wire import state_key

    status = client.hget(state_key(source_id), "status")
    if status is None:
        fail(f"no source '{source_id}' is known to this Redis — see `dinotrack status`")
    if status.decode() in {"finished", "failed", "stopped"}:
        fail(f"source '{source_id}' has {status.decode()}: prompts reach a queued or running "
             "source only — run it again with these prompts")  # fmt: skip
    if not remove_track:
        return
    last = last_frame_index(client, source_id)
    seen = set()
    if last is not None:
        for result in read_frames(client, source_id, max(0, last - RECENT_FRAMES), last):
            seen.update(t.id for t in result.tracks)
    for track_id in remove_track:
        if track_id not in seen:
            known = ", ".join(str(t) for t in sorted(seen)) or "none yet"
            fail(f"source '{source_id}' has no track {track_id} in its last {RECENT_FRAMES} "
                 f"frames (tracks: {known}) — see `dinotrack tail {source_id}`")  # fmt: skip
