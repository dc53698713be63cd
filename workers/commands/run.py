"""``dinotrack run``: track one source here, publishing to Redis, with a progress bar."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from workers.commands.console import err, fail, guarded, out, settings_from
from workers.commands.jobs import (
    check_job,
    check_prompts,
    default_source_id,
    job_overrides,
    resolve_backbone,
)
from workers.commands.options import (
    AddressOpt,
    BackboneOpt,
    ConfigOpt,
    DataDirOpt,
    DebugOpt,
    EndOpt,
    FreshOpt,
    RedisOpt,
    ResumeOpt,
    SegmenterOpt,
    SourceArg,
    SourceIdOpt,
    StartOpt,
    StrideOpt,
)
from workers.commands.prompt_args import PromptArgs, with_prompt_args


@with_prompt_args
def run(
    source: SourceArg,
    prompt_args: PromptArgs,
    source_id: SourceIdOpt = None,
    backbone: BackboneOpt = None,
    segmenter: SegmenterOpt = None,
    stride: StrideOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    address: AddressOpt = None,
    chunks: Annotated[
        str, typer.Option("--chunks", help="auto | N: split a long file into N parallel chunks.")
    ] = "1",
    overlap: Annotated[
        int, typer.Option("--overlap", help="Frames two chunks share (to stitch ids).")
    ] = 8,
    fresh: FreshOpt = False,
    resume: ResumeOpt = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Track prompted objects through SOURCE and publish one entry per frame to Redis."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    with guarded(debug):
        settings = settings_from(
            config,
            redis_url=redis,
            data_dir=data_dir,
            debug=debug or None,
            ray={"address": address},
            **job_overrides(backbone, segmenter, stride, start, end),
        )
        from pipeline.prompts import prompts_to_json
        from pipeline.sources import probe as probe_source
        from pipeline.wire import frames_key
        from workers.redis_target import redis_url_for
        from workers.runner import run_source

        info = probe_source(source, settings.source)
        prompt_list = prompt_args.parse()
        if not prompt_list:
            fail("no prompt given — add --box x0,y0,x1,y1, --mask PNG, --point x,y or --prompts")
        prompt_list = check_prompts(prompt_list, info.width, info.height)
        check_job(info, prompt_list, settings.source, (start, end, stride), overlap)
        n_chunks = chunk_count(chunks, info.frames, settings)
        if any(p.needs_text_detector for p in prompt_list):  # fail now, not in an actor
            from pipeline.models.text_detector import DEFAULT_MODEL
            from pipeline.models.weights import resolve_hf_model

            resolve_hf_model(DEFAULT_MODEL, alternative="or prompt with boxes or points instead")
        resolve_backbone(settings)
        sid = source_id or default_source_id(source)
        with redis_url_for(settings) as url:
            from pipeline.outputs.redis_streams import connect
            from workers.rerun import check_run

            if resume and n_chunks > 1:
                fail("--resume continues one run from its checkpoint: leave --chunks out")
            resumes = check_run(connect(url), sid, fresh, resume)
            err.print(Text(f"publishing to {frames_key(sid)}"))
            progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[fps]:.1f} fps"),
                TimeRemainingColumn(),
                console=err,
                transient=False,
            )
            with progress:
                task = progress.add_task(escape(sid), total=info.frames, fps=0.0)
                t0 = time.perf_counter()

                def on_progress(done: int, total: int | None) -> None:
                    fps = done / max(time.perf_counter() - t0, 1e-9)
                    progress.update(task, completed=done, total=total, fps=fps)

                prompt_json = prompts_to_json(prompt_list)["prompts"]
                if n_chunks > 1:
                    from workers.chunks import run_chunked

                    summary = run_chunked(settings, source, sid, prompt_json, url, n_chunks,
                                          overlap, on_progress=on_progress)  # fmt: skip
                else:
                    summary = run_source(settings, source, sid, prompt_json, url,
                                         on_progress=on_progress, resume=resumes)  # fmt: skip
        print_summary(summary)
        if summary.error:
            fail(f"{summary.error} ({summary.frames} frames were published before it)", 1)


def chunk_count(chunks: str, frames: int | None, settings) -> int:
    """--chunks as a number (auto: by the CPUs Ray offers and the length, see `auto_chunks`)."""
    if chunks == "auto":
        import ray

        from workers.chunks import auto_chunks
        from workers.runner import init_ray

        if not frames:
            return 1
        init_ray(settings)
        return auto_chunks(frames, ray.cluster_resources().get("CPU", 1))
    if not chunks.isdigit() or int(chunks) < 1:
        fail(f"--chunks must be auto or a positive number, not '{chunks}'")
    if int(chunks) > 1 and not frames:
        fail("--chunks needs a source with a known length (a file or an image folder)")
    return int(chunks)


def print_summary(summary) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"dinotrack run: {summary.source_id}"), show_header=False)
    table.add_row("frames", str(summary.frames))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("fps", f"{summary.fps:.2f}")
    table.add_row("tracks", ", ".join(str(t) for t in sorted(summary.tracks)) or "none")
    table.add_row("backbone", Text(summary.backbone))
    pub = summary.publish
    if pub:
        table.add_row(
            "published",
            f"{pub.get('published', 0)} (duplicates skipped {pub.get('duplicates', 0)}, "
            f"lost {pub.get('dropped', 0)})",
        )
    table.add_row("dropped", f"{summary.dropped} (live frames skipped: processing was behind)")
    if summary.error:
        from pipeline.redact import redact

        table.add_row("error", Text(redact(summary.error)))
    out.print(table)
