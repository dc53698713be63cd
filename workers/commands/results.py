"""``dinotrack tail`` and ``export``: read a source's published frames back from Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from workers.commands.console import fail, guarded, say, settings_from
from workers.commands.options import (
    ConfigOpt,
    DataDirOpt,
    DebugOpt,
    JsonOpt,
    PublishedSourceIdOpt,
    RedisOpt,
)


def tail(
    source_id: Annotated[str, typer.Argument(help="Source id whose frames to print.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep waiting after the source has finished.")
    ] = False,
    new: Annotated[bool, typer.Option("--new", help="Only frames published from now on.")] = False,
    group: Annotated[
        str | None, typer.Option("--group", help="Read through this consumer group (resumable).")
    ] = None,
    consumer: Annotated[str, typer.Option("--consumer", help="Consumer name in --group.")] = "tail",
    as_json: JsonOpt = False,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print published frames of SOURCE_ID as they arrive."""
    with guarded(debug):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir)
        from pipeline.outputs.redis_streams import TrackReader, connect
        from pipeline.wire import frame_result_to_dict, frames_key, state_key
        from workers.redis_target import redis_url_for

        with redis_url_for(settings, announce=not as_json) as url:
            client = connect(url)
            reader = TrackReader(client, source_id, group, consumer, start="$" if new else "0")
            while True:
                batch = reader.read(count=200, block_ms=500)
                for entry_id, result in batch:
                    if as_json:
                        print(json.dumps(frame_result_to_dict(result)), flush=True)
                    else:
                        print(format_frame(result), flush=True)
                    reader.ack(entry_id)
                if batch or follow:
                    continue
                status = client.hget(state_key(source_id), "status")
                if status is None or status.decode() in {"finished", "failed", "stopped"}:
                    if status is None and not client.exists(frames_key(source_id)):
                        fail(f"no source '{source_id}' is known to this Redis — see "
                             "`dinotrack status`")  # fmt: skip
                    break


def format_frame(result) -> str:
    tracks = " ".join(
        f"#{t.id}{'(' + t.label + ')' if t.label else ''}:{t.state.value}:"
        + ("-" if t.box is None else ",".join(f"{v:.0f}" for v in t.box))
        for t in result.tracks
    )
    return f"{result.frame_index:>6} {result.pts:9.3f}s  {tracks or '(no tracks)'}"


def export(
    source_id: PublishedSourceIdOpt,
    fmt: Annotated[str, typer.Option("--format", help="davis | mot | coco")],
    out_path: Annotated[Path, typer.Option("--out", help="Folder (davis) or file (mot, coco).")],
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Write a source's published results as DAVIS PNGs, MOTChallenge txt or COCO JSON."""
    with guarded(debug):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir)
        from pipeline.outputs import exports
        from pipeline.outputs.redis_streams import connect, read_frames
        from workers.redis_target import redis_url_for

        writers = {"davis": exports.export_davis, "mot": exports.export_mot,
                   "coco": exports.export_coco}  # fmt: skip
        if fmt not in writers:
            fail(f"unknown --format '{fmt}' — use davis, mot or coco")
        with redis_url_for(settings) as url:
            client = connect(url)
            results = list(read_frames(client, source_id))
            if not results:
                fail(f"no frames published for source '{source_id}' — check --source-id / --redis")
            frame_names = _frame_names(client, source_id)
            if fmt == "davis":
                writers[fmt](results, out_path, frame_names=frame_names)
            else:
                writers[fmt](results, out_path)
        say(f"wrote {len(results)} frames of '{source_id}' as {fmt} to {out_path}")


def _frame_names(client, source_id: str) -> dict[int, str] | None:
    """Input frame names of an image-folder source (recorded at run time), for DAVIS exports."""
    from pipeline.sources.images import list_images
    from pipeline.wire import state_key

    uri = client.hget(state_key(source_id), "source")
    if uri is None or not Path(uri.decode()).is_dir():
        return None
    return {i: Path(p).stem for i, p in enumerate(list_images(Path(uri.decode())))}
