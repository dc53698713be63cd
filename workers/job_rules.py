"""What a job from the queue may ask of a worker: its source's place, and the settings it may set.

A job's ``settings`` may set only the per-source options in `JOB_SETTINGS` (range, sampling, the
models to use); everything else (weights paths, cache folders, ``max_pixels``, timeouts, buffers,
Ray, Redis, the worker's own limits) is the worker's. Its source must be a path under the worker's
``worker.allowed_roots`` or a URL with one of its ``worker.allowed_schemes`` (`pipeline.confine`).
A job that breaks either rule is refused (event ``job.refused``) before anything is opened.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.confine import Confinement, Refused
from pipeline.settings import WorkerConfig
from pipeline.wire import Job

JOB_SETTINGS = (
    "segmenter",
    "backbone.name",
    "source.start",
    "source.end",
    "source.stride",
    "source.target_fps",
    "source.images_fps",
    "source.rtsp_transport",
)
"""The settings a job may set (dotted paths of `pipeline.settings.Settings`)."""


class JobRefused(ValueError):
    """A job the worker will not run; the message says why and what to do."""


def confinement(worker: WorkerConfig) -> Confinement:
    """Where the worker reads input from the queue (jobs' sources and prompt files)."""
    return Confinement.of(worker.allowed_roots, worker.allowed_schemes)


def check_job(job: Job, worker: WorkerConfig) -> Job:
    """The job as the worker runs it (a file source as its resolved path).

    Raises:
        JobRefused: A setting a job may not set, or a source outside the worker's confinement.
    """
    refused = [path for path in _leaves(job.settings) if path not in JOB_SETTINGS]
    if refused:
        raise JobRefused(
            f"job settings {', '.join(refused)} belong to the worker, not to a job — a job may "
            f"set only {', '.join(JOB_SETTINGS)}; set the others on the worker"
        )
    try:
        source = confinement(worker).source(job.source)
    except Refused as exc:
        raise JobRefused(str(exc)) from None
    return dataclasses.replace(job, source=source)


def _leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out.extend(_leaves(value, f"{path}.") if isinstance(value, dict) and value else [path])
    return out
