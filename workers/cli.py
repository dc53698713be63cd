"""The ``dinotrack`` command line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

app = typer.Typer(
    help="Track objects in videos with self-supervised patch features; results go to Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(help="Score the tracker on benchmark data.", no_args_is_help=True)
models_app = typer.Typer(help="List and fetch model weights.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")

err = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Settings file (YAML, JSON or TOML).")
]
RedisOpt = Annotated[
    str | None,
    typer.Option(
        "--redis",
        help="Redis URL (redis://, rediss://, user:password@). Default: DINOTRACK_REDIS_URL, "
        "else an embedded server in --data-dir.",
    ),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Embedded Redis data folder [./.dinotrack].")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and Ray logs.")]


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(debug: bool, log_warnings: bool = False):
    """Context manager: user-facing errors become one line and exit 2 (tracebacks with --debug).

    Logs go to stderr (JSON lines when it is not a terminal): errors only for one-shot commands,
    whose failures are already printed, warnings too for the worker.
    """
    import contextlib

    from workers.errors import user_errors

    @contextlib.contextmanager
    def _guard():
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
            fail(_one_line(exc))
        except Exception as exc:  # unexpected: still one line unless --debug
            if debug:
                raise
            fail(f"{type(exc).__name__}: {_one_line(exc)} (run again with --debug for details)", 1)

    return _guard()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def settings_from(config: Path | None, **overrides: Any):
    from pipeline.settings import load_settings

    return load_settings(config, **overrides)


def parse_prompt_args(
    boxes: list[str],
    masks: list[str],
    points: list[str],
    texts: list[str],
    exemplars: list[str],
    detections: str | None,
    prompts_file: Path | None,
    exemplar_threshold: float = 0.5,
) -> list:
    from pipeline.prompts import (
        load_prompts_file,
        merge_points,
        parse_box_arg,
        parse_detections_arg,
        parse_exemplar_arg,
        parse_mask_arg,
        parse_point_arg,
        parse_text_arg,
    )

    prompts: list = []
    if prompts_file is not None:
        prompts.extend(load_prompts_file(prompts_file))
    prompts.extend(parse_box_arg(b) for b in boxes)
    prompts.extend(parse_mask_arg(m) for m in masks)
    prompts.extend(merge_points([parse_point_arg(p) for p in points]))
    prompts.extend(parse_text_arg(t) for t in texts)
    prompts.extend(parse_exemplar_arg(e, exemplar_threshold) for e in exemplars)
    if detections:
        prompts.append(parse_detections_arg(detections))
    return prompts


def check_prompts(prompts: list, width: int, height: int) -> list:
    """Validate prompts against the frame size; any invalid prompt stops the run before work."""
    from pipeline.prompts import validate_prompts

    valid, errors = validate_prompts(prompts, width, height)
    if errors:
        for e in errors[:-1]:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        fail(str(errors[-1]))
    return valid


def resolve_backbone(settings) -> None:
    """Replace ``auto`` by the backbone actually used, saying why on stderr once."""
    from pipeline.models.registry import resolve_backbone_name

    name, note = resolve_backbone_name(settings.backbone.name)
    if note:
        err.print(note, highlight=False)
    settings.backbone.name = name


BoxOpt = Annotated[list[str], typer.Option("--box", help="x0,y0,x1,y1[@frame] (repeatable).")]
MaskOpt = Annotated[
    list[str], typer.Option("--mask", help="PNG[@frame]: each non-zero id is an object.")
]
PointOpt = Annotated[list[str], typer.Option("--point", help="x,y[,label][@frame] (label 1 or 0).")]
TextOpt = Annotated[
    list[str], typer.Option("--text", help="Categories or a phrase (open-vocabulary).")
]
ExemplarOpt = Annotated[
    list[str],
    typer.Option("--exemplar", help="ref.jpg:x0,y0,x1,y1[@frame]: find that object by looks."),
]
ExemplarThresholdOpt = Annotated[
    float, typer.Option("--exemplar-threshold", help="Cosine similarity an exemplar match needs.")
]
DetectionsOpt = Annotated[
    str | None, typer.Option("--detections", help="External detections: MOT det.txt or JSON.")
]
PromptsOpt = Annotated[
    Path | None, typer.Option("--prompts", help="Prompt JSON file (docs/prompts.md).")
]
SourceIdOpt = Annotated[
    str | None, typer.Option("--source-id", help="Names the Redis keys [file stem].")
]
BackboneOpt = Annotated[
    str | None,
    typer.Option("--backbone", help="auto | dinov2-small|base|large | dino-vits16|vits8|vitb16|"
                 "vitb8 | mobilenetv2-imagenet"),
]  # fmt: skip
SegmenterOpt = Annotated[
    str | None, typer.Option("--segmenter", help="none | sam-vit_b | sam-vit_l | sam-vit_h")
]
StrideOpt = Annotated[int | None, typer.Option("--stride", help="Process every Nth frame.")]
StartOpt = Annotated[str | None, typer.Option("--start", help="First frame: index or HH:MM:SS.")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Last frame: index or HH:MM:SS.")]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Ray cluster address (auto: join a running one).")
]


def job_overrides(backbone, segmenter, stride, start, end) -> dict[str, Any]:
    """The settings a job's model and range options override (None: keep the defaults)."""
    return {"segmenter": segmenter, "backbone": {"name": backbone},
            "source": {"stride": stride, "start": start, "end": end}}  # fmt: skip


@app.command()
def run(
    source: Annotated[str, typer.Argument(help="Video file, image folder, or stream URL.")],
    box: BoxOpt = [],  # noqa: B006
    mask: MaskOpt = [],  # noqa: B006
    point: PointOpt = [],  # noqa: B006
    text: TextOpt = [],  # noqa: B006
    exemplar: ExemplarOpt = [],  # noqa: B006
    exemplar_threshold: ExemplarThresholdOpt = 0.5,
    detections: DetectionsOpt = None,
    prompts: PromptsOpt = None,
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
        from workers.redis_target import redis_url_for
        from workers.runner import run_source

        info = probe_source(source, settings.source)
        prompt_list = parse_prompt_args(
            box, mask, point, text, exemplar, detections, prompts, exemplar_threshold
        )
        if not prompt_list:
            fail("no prompt given — add --box x0,y0,x1,y1, --mask PNG, --point x,y or --prompts")
        prompt_list = check_prompts(prompt_list, info.width, info.height)
        if any(p.kind == "text" for p in prompt_list):  # fail now, not in an actor
            from pipeline.models.text_detector import DEFAULT_MODEL
            from pipeline.models.weights import resolve_hf_model

            resolve_hf_model(DEFAULT_MODEL, alternative="or prompt with boxes or points instead")
        resolve_backbone(settings)
        sid = source_id or default_source_id(source)
        with redis_url_for(settings) as url:
            err.print(f"publishing to dinotrack:{sid}:frames", highlight=False)
            progress = Progress(
                TextColumn(f"[bold]{sid}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[fps]:.1f} fps"),
                TimeRemainingColumn(),
                console=err,
                transient=False,
            )
            with progress:
                task = progress.add_task("frames", total=info.frames, fps=0.0)
                t0 = time.perf_counter()

                def on_progress(done: int, total: int | None) -> None:
                    fps = done / max(time.perf_counter() - t0, 1e-9)
                    progress.update(task, completed=done, total=total, fps=fps)

                prompt_json = prompts_to_json(prompt_list)["prompts"]
                n_chunks = chunk_count(chunks, info.frames, settings)
                if n_chunks > 1:
                    from workers.chunks import run_chunked

                    summary = run_chunked(settings, source, sid, prompt_json, url, n_chunks,
                                          overlap, on_progress=on_progress)  # fmt: skip
                else:
                    summary = run_source(
                        settings, source, sid, prompt_json, url, on_progress=on_progress
                    )
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


def default_source_id(source: str) -> str:
    import re

    stem = Path(source.rstrip("/")).stem or "source"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)


def print_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"dinotrack run: {summary.source_id}", show_header=False)
    table.add_row("frames", str(summary.frames))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("fps", f"{summary.fps:.2f}")
    table.add_row("tracks", ", ".join(str(t) for t in sorted(summary.tracks)) or "none")
    table.add_row("backbone", summary.backbone)
    pub = summary.publish
    if pub:
        table.add_row(
            "published",
            f"{pub.get('published', 0)} (duplicates skipped {pub.get('duplicates', 0)}, "
            f"refused by Redis {pub.get('dropped', 0)})",
        )
    table.add_row("dropped", f"{summary.dropped} (live frames skipped: processing was behind)")
    if summary.error:
        table.add_row("error", summary.error)
    out.print(table)


@app.command()
def probe(
    source: Annotated[str, typer.Argument(help="Video file, image folder, or stream URL.")],
    debug: DebugOpt = False,
) -> None:
    """Print what dinotrack sees of SOURCE as JSON (frames, fps, duration, size, codec)."""
    with guarded(debug):
        from pipeline.sources import probe as probe_source

        print(json.dumps(probe_source(source).to_dict(), indent=2))


@app.command()
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
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print published frames of SOURCE_ID as they arrive."""
    with guarded(debug):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir)
        from pipeline.outputs.redis_streams import TrackReader, connect
        from pipeline.wire import frame_result_to_dict, state_key
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
                    if status is None and not client.exists(f"dinotrack:{source_id}:frames"):
                        err.print(f"no frames published for source '{source_id}'")
                    break


def format_frame(result) -> str:
    tracks = " ".join(
        f"#{t.id}{'(' + t.label + ')' if t.label else ''}:{t.state.value}:"
        + ("-" if t.box is None else ",".join(f"{v:.0f}" for v in t.box))
        for t in result.tracks
    )
    return f"{result.frame_index:>6} {result.pts:9.3f}s  {tracks or '(no tracks)'}"


@app.command()
def export(
    source_id: Annotated[str, typer.Option("--source-id", help="Source whose results to export.")],
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
        err.print(f"wrote {len(results)} frames of '{source_id}' as {fmt} to {out_path}")


def _frame_names(client, source_id: str) -> dict[int, str] | None:
    """Input frame names of an image-folder source (recorded at run time), for DAVIS exports."""
    from pipeline.sources.images import list_images
    from pipeline.wire import state_key

    uri = client.hget(state_key(source_id), "source")
    if uri is None or not Path(uri.decode()).is_dir():
        return None
    return {i: Path(p).stem for i, p in enumerate(list_images(Path(uri.decode())))}


@app.command()
def submit(
    source: Annotated[str, typer.Argument(help="Video file, image folder, or stream URL.")],
    box: BoxOpt = [],  # noqa: B006
    mask: MaskOpt = [],  # noqa: B006
    point: PointOpt = [],  # noqa: B006
    text: TextOpt = [],  # noqa: B006
    exemplar: ExemplarOpt = [],  # noqa: B006
    exemplar_threshold: ExemplarThresholdOpt = 0.5,
    detections: DetectionsOpt = None,
    prompts: PromptsOpt = None,
    source_id: SourceIdOpt = None,
    backbone: BackboneOpt = None,
    segmenter: SegmenterOpt = None,
    stride: StrideOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Queue SOURCE as a job for `dinotrack worker` (same prompt and model options as run)."""
    with guarded(debug):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir)
        from pipeline.outputs.redis_streams import connect
        from pipeline.prompts import prompts_to_json
        from pipeline.settings import drop_none, load_settings
        from pipeline.sources import is_live
        from pipeline.sources import probe as probe_source
        from pipeline.wire import Job
        from workers.redis_target import redis_url_for
        from workers.service import submit_job

        overrides = job_overrides(backbone, segmenter, stride, start, end)
        load_settings(None, **overrides)  # refuse bad values now, not in the worker
        prompt_list = parse_prompt_args(
            box, mask, point, text, exemplar, detections, prompts, exemplar_threshold
        )
        if not is_live(source) and Path(source).exists():
            info = probe_source(source, settings.source)
            prompt_list = check_prompts(prompt_list, info.width, info.height)
        sid = source_id or default_source_id(source)
        job = Job(source=source, source_id=sid, prompts=prompts_to_json(prompt_list)["prompts"],
                  settings=drop_none(overrides))  # fmt: skip
        with redis_url_for(settings) as url:
            job_id = submit_job(connect(url), job)
        out.print(f"queued job {job_id}: {source} as source '{sid}'")


@app.command()
def worker(
    address: AddressOpt = None,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    max_sources: Annotated[int, typer.Option("--max-sources", help="Jobs run at once.")] = 4,
    claim_idle: Annotated[
        float, typer.Option("--claim-idle", help="Seconds before a silent job is taken over.")
    ] = 60.0,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus metrics here.")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="Serve the web page here.")
    ] = None,
    http_host: Annotated[
        str, typer.Option("--http-host", help="Address the web page listens on.")
    ] = "127.0.0.1",
    max_jobs: Annotated[
        int | None, typer.Option("--max-jobs", help="Exit after this many jobs (tests, batch).")
    ] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Take jobs from Redis (dinotrack:jobs) and run them, several sources at once."""
    import signal
    import threading

    with guarded(debug, log_warnings=True):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir,
                                 ray={"address": address}, debug=debug or None)  # fmt: skip
        from workers.redis_target import redis_url_for
        from workers.service import Worker

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with redis_url_for(settings) as url:
            w = Worker(settings, url, max_sources=max_sources, claim_idle_s=claim_idle)
            if metrics_port is not None:
                from workers.metrics import start_metrics_server

                start_metrics_server(metrics_port)
            web = None
            if http_port is not None:
                from workers.http import start_http_server

                web = start_http_server(url, http_port, http_host)
            err.print(f"worker {w.name} taking jobs from dinotrack:jobs at {url}")
            try:
                w.run(stop=stop, max_jobs=max_jobs)
            except KeyboardInterrupt:
                stop.set()
            finally:
                if web is not None:
                    web.shutdown()
        for job in w.finished:
            err.print(f"{job.get('source_id', '?')}: {job['status']} {job.get('error') or ''}")


@app.command()
def status(
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    debug: DebugOpt = False,
) -> None:
    """A table of every source: state, frames, fps, lag, errors."""
    from rich.table import Table

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
        table = Table("source", "state", "frames", "fps", "lag", "dropped", "restarts", "error")
        for typed in rows:
            r = {k: "" if v is None else str(v) for k, v in typed.items()}
            done, total = r.get("frames_done", ""), r.get("total", "")
            table.add_row(r["source_id"], r.get("status", ""),
                          f"{done}/{total}" if total else done, r.get("fps", ""), r.get("lag", ""),
                          r.get("dropped", ""), r.get("restarts", ""),
                          r.get("last_error", ""))  # fmt: skip
        out.print(table)


@app.command()
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
        out.print(f"stop sent to '{source_id}' (was {was})")


@app.command()
def prompt(
    source_id: Annotated[str, typer.Argument(help="Running source to change.")],
    box: BoxOpt = [],  # noqa: B006
    mask: MaskOpt = [],  # noqa: B006
    point: PointOpt = [],  # noqa: B006
    text: TextOpt = [],  # noqa: B006
    exemplar: ExemplarOpt = [],  # noqa: B006
    exemplar_threshold: ExemplarThresholdOpt = 0.5,
    detections: DetectionsOpt = None,
    prompts: PromptsOpt = None,
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

        prompt_list = parse_prompt_args(
            box, mask, point, text, exemplar, detections, prompts, exemplar_threshold
        )
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
        out.print(f"sent {len(prompt_list)} prompt(s), {len(remove_track)} removal(s) to "
                  f"'{source_id}'")  # fmt: skip


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

        err.print(f"{name}: {pull(name)}")


@app.command("config")
def show_config(config: ConfigOpt = None) -> None:
    """Print the effective settings (defaults < file < DINOTRACK_* environment) as JSON."""
    with guarded(False):
        print(settings_from(config).model_dump_json(indent=2))


def _register_commands() -> None:
    from workers.commands.eval_davis import davis
    from workers.commands.eval_mot import mot
    from workers.commands.render import render

    app.command("render")(render)
    eval_app.command("davis")(davis)
    eval_app.command("mot")(mot)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
