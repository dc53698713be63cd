"""``dinotrack render``: a source's published results drawn over its video (mp4, or one PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workers.commands.console import fail, guarded, say
from workers.commands.options import (
    ConfigOpt,
    DataDirOpt,
    DebugOpt,
    PublishedSourceIdOpt,
    RedisOpt,
)

TRAIL = 24
"""Box centres of earlier frames drawn behind each track."""


def render(
    source_id: PublishedSourceIdOpt,
    out: Annotated[
        Path, typer.Option("--out", help="Output file: .mp4 (all frames) or .png (one frame).")
    ],
    frame: Annotated[
        int | None,
        typer.Option("--frame", help="Frame index for a .png [the last published frame]."),
    ] = None,
    video: Annotated[
        str | None,
        typer.Option(
            "--video",
            help="The source video [the 'source' recorded in dinotrack:<source-id>:state].",
        ),
    ] = None,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Draw the published masks, boxes, ids and trails of SOURCE_ID over its video."""
    with guarded(debug):
        suffix = out.suffix.lower()
        if suffix not in (".mp4", ".png"):
            fail(f"--out '{out}' must end in .mp4 (video) or .png (one frame)")
        if frame is not None and suffix != ".png":
            fail(f"--frame draws one frame: name --out *.png, not '{out}'")
        if frame is not None and frame < 0:
            fail(f"--frame {frame} must be a frame index >= 0")

        from pipeline.outputs.redis_streams import connect, last_frame_index, read_frames
        from pipeline.outputs.render import RenderConfig, Renderer, render_video, write_png
        from pipeline.settings import load_settings
        from pipeline.sources import is_live, open_source
        from pipeline.wire import state_key
        from workers.redis_target import redis_url_for

        settings = load_settings(config, redis_url=redis, data_dir=data_dir)
        # every frame of the source, whatever range or sampling the run used: indices match
        source_config = settings.source.model_copy(
            update={"stride": 1, "target_fps": None, "start": None, "end": None}
        )
        with redis_url_for(settings) as url:
            client = connect(url)
            last = last_frame_index(client, source_id)
            if last is None:
                fail(f"no frames published for source '{source_id}' — check --source-id / --redis")
            if video is None:
                recorded = client.hget(state_key(source_id), "source")
                if not recorded:
                    fail(f"no source video recorded for '{source_id}' — pass --video PATH")
                video = recorded.decode()
            if is_live(video):
                fail(
                    f"source '{source_id}' is a live stream ({video}) whose frames are not kept — "
                    "pass --video with a recording of it"
                )
            out.parent.mkdir(parents=True, exist_ok=True)
            source = open_source(video, source_id, source_config)
            try:
                if suffix == ".png":
                    index = last if frame is None else frame
                    results = list(read_frames(client, source_id, max(0, index - TRAIL), index))
                    if not results or results[-1].frame_index != index:
                        fail(
                            f"frame {index} of '{source_id}' was not published (published frames "
                            f"end at {last}) — pick another --frame"
                        )
                    image = next(iter(source.frames(start=index)), None)
                    if image is None or image.index != index:
                        fail(f"frame {index} is not in {video} — is it the source's video?")
                    renderer = Renderer(RenderConfig(trail=TRAIL))
                    for earlier in results[:-1]:
                        renderer.remember(earlier)
                    write_png(out, renderer.draw(image.image, results[-1]))
                    say(f"wrote frame {index} of '{source_id}' to {out}")
                    return
                written = render_video(
                    read_frames(client, source_id), source, out, RenderConfig(trail=TRAIL)
                )
            finally:
                source.close()
            if written == 0:
                fail(f"no published frame of '{source_id}' matched a frame of {video} — "
                     "is it the source's video?")  # fmt: skip
            say(f"wrote {written} frames of '{source_id}' to {out}")
