"""``dinotrack submit`` and ``worker``: jobs queued in Redis and the workers that run them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workers.commands.console import fail, guarded, out, say, settings_from
from workers.commands.jobs import (
    check_job,
    check_prompts,
    default_source_id,
    job_overrides,
    refuse_live_range,
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
def submit(
    source: SourceArg,
    prompt_args: PromptArgs,
    source_id: SourceIdOpt = None,
    backbone: BackboneOpt = None,
    segmenter: SegmenterOpt = None,
    stride: StrideOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    fresh: FreshOpt = False,
    resume: ResumeOpt = False,
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
        prompt_list = prompt_args.parse()
        job_source = load_settings(None, **overrides).source  # refuse bad values now
        if is_live(source):
            refuse_live_range(source, (start, end, stride))
        else:
            path = Path(source).expanduser().resolve()  # the worker may run elsewhere
            if not path.exists():
                fail(f"{source} not found — give an existing video file or image folder, "
                     "or a stream URL")  # fmt: skip
            source = str(path)
            info = probe_source(source, job_source)
            prompt_list = check_prompts(prompt_list, info.width, info.height)
            check_job(info, prompt_list, job_source, (start, end, stride))
        sid = source_id or default_source_id(source)
        if fresh and resume:
            fail("--fresh and --resume exclude each other — give one")
        job = Job(source=source, source_id=sid, prompts=prompts_to_json(prompt_list)["prompts"],
                  settings=drop_none(overrides),
                  on_existing="fresh" if fresh else "resume" if resume else None)  # fmt: skip
        with redis_url_for(settings) as url:
            job_id = submit_job(connect(url), job)
        say(f"queued job {job_id}: {source} as source '{sid}'", out)


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
    metrics_host: Annotated[
        str | None,
        typer.Option("--metrics-host", help="Address metrics listen on [worker.metrics_host]."),
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
    import threading

    with guarded(debug, log_warnings=True):
        settings = settings_from(config, redis_url=redis, data_dir=data_dir,
                                 ray={"address": address}, debug=debug or None,
                                 worker={"metrics_host": metrics_host})  # fmt: skip
        from pipeline.redact import redact, redact_url
        from workers.redis_target import redis_url_for
        from workers.service import Worker

        stop = threading.Event()  # SIGTERM/SIGINT set it (Worker.run installs the handlers)
        with redis_url_for(settings) as url:
            w = Worker(settings, url, max_sources=max_sources, claim_idle_s=claim_idle)
            if metrics_port is not None:
                from workers.metrics import start_metrics_server

                start_metrics_server(metrics_port, settings.worker.metrics_host)
            web = None
            if http_port is not None:
                from workers.http import start_http_server
                from workers.job_rules import confinement

                web = start_http_server(url, http_port, confinement(settings.worker), http_host)
            say(f"worker {w.name} taking jobs from dinotrack:jobs at {redact_url(url)}")
            try:
                w.run(stop=stop, max_jobs=max_jobs)
            except KeyboardInterrupt:
                stop.set()
            finally:
                if web is not None:
                    web.shutdown()
        for job in w.finished:
            error = redact(job.get("error") or "")
            say(f"{job.get('source_id', '?')}: {job['status']} {error}")
