"""The long-running service: a worker takes jobs from ``dinotrack:jobs`` and runs many sources.

Workers share the jobs stream through the consumer group ``workers``. A job stays pending (not
acknowledged) while it runs, and its worker touches it every ``heartbeat_s`` (XCLAIM to itself), so
its idle time stays low. A job whose idle time passes ``claim_idle_s`` belongs to a dead worker:
another worker takes it over with XAUTOCLAIM and resumes it from its checkpoint. One failing job is
marked failed with its reason; the worker and the other jobs go on.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from pipeline.confine import confined
from pipeline.redact import redact
from pipeline.settings import Settings
from pipeline.types import Event
from pipeline.wire import (
    JOBS_STREAM,
    STATE_KEYS,
    Job,
    WireError,
    control_key,
    decode_job,
    decode_state,
    encode_control,
    encode_event,
    encode_job,
    events_key,
    job_source_id,
    source_id_of_state_key,
    state_key,
)
from workers.job_rules import JobRefused, check_job, confinement
from workers.reconnect import REDIS_DOWN, Backoff

log = logging.getLogger("dinotrack.service")

GROUP = "workers"


def submit_job(client: redis.Redis, job: Job) -> str:
    """Queue a job; returns its id. The source's state becomes ``queued``.

    Raises RerunRefused when the re-run rule refuses it (see `workers.rerun`).
    """
    from workers import rerun

    rerun.check_submit(client, job)
    job.job_id = job.job_id or uuid.uuid4().hex[:12]
    job.submitted = job.submitted or time.time()
    client.hset(
        state_key(job.source_id),
        mapping={"status": "queued", "source": redact(job.source), "job_id": job.job_id,
                 "last_error": "", "frames_done": 0},
    )  # fmt: skip
    entry_id = client.xadd(JOBS_STREAM, encode_job(job))
    rerun.mark_queued(client, job, entry_id.decode())
    return job.job_id


def request_stop(client: redis.Redis, source_id: str) -> str:
    """Ask the worker running ``source_id`` to stop; a queued job is marked stopped at once."""
    status = client.hget(state_key(source_id), "status")
    if status is None:
        raise ValueError(f"no source '{source_id}' is known to this Redis — see `dinotrack status`")
    client.xadd(control_key(source_id), encode_control("stop"))
    if status == b"queued":
        from workers.rerun import job_key

        client.hset(state_key(source_id), "status", "stopped")
        if job_id := client.hget(state_key(source_id), "job_id"):
            client.hset(job_key(job_id.decode()), "status", "stopped")
    return status.decode()


def source_states(client: redis.Redis) -> list[dict[str, Any]]:
    """Every source's state hash (typed, see `decode_state`), with its id, sorted by id."""
    rows = []
    for key in client.scan_iter(match=STATE_KEYS, count=500):
        source_id = source_id_of_state_key(key)
        rows.append({"source_id": source_id, **decode_state(client.hgetall(key))})
    return sorted(rows, key=lambda r: r["source_id"])


def merge_settings(base: Settings, overrides: dict[str, Any]) -> Settings:
    """The worker's settings with a job's nested overrides applied (validated)."""

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    return Settings.model_validate(merge(base.model_dump(), overrides))


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop`` (main thread only); returns what restores the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, _frame: Any) -> None:
        log.warning("%s: handing running jobs back to the queue", signal.Signals(signum).name)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


@dataclass
class _Running:
    entry_id: str
    job: Job
    thread: threading.Thread
    result: dict[str, Any] = field(default_factory=dict)


class Worker:
    """Takes jobs from Redis and runs them in this process's Ray, several at once.

    Args:
        settings: The worker's settings (a job's ``settings`` override them for that job).
        redis_url: Where jobs come from and results go.
        name: Consumer name in the group (default host-pid).
        max_sources: Jobs run at once.
        claim_idle_s: A job not touched for this long is taken over from its (dead) worker.
        heartbeat_s: How often running jobs are touched.
    """

    def __init__(
        self,
        settings: Settings,
        redis_url: str,
        name: str | None = None,
        max_sources: int = 4,
        claim_idle_s: float = 60.0,
        heartbeat_s: float = 5.0,
    ):
        self.settings = settings
        self.redis_url = redis_url
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.max_sources = max_sources
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.heartbeat_s = min(heartbeat_s, claim_idle_s / 3)
        self.client = redis.Redis.from_url(redis_url)
        self.running: dict[str, _Running] = {}
        self.finished: list[dict[str, Any]] = []
        self._backbones: dict[str, Any] = {}
        self._segmenters: dict[str, Any] = {}
        self._trackers: Any = None  # one `TrackerActor` holds the trackers of every source
        self._lock = threading.Lock()
        self._halt = threading.Event()
        try:
            self.client.xgroup_create(JOBS_STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, stop: threading.Event | None = None, max_jobs: int | None = None) -> None:
        """Serve jobs until ``stop`` is set (or ``max_jobs`` jobs have ended)."""
        from workers.runner import init_ray

        init_ray(self.settings)
        stop = stop or threading.Event()
        restore = _stop_on_signals(stop)  # after ray.init, which installs its own handlers
        last_beat = 0.0
        backoff = Backoff(f"worker {self.name}")
        while not stop.is_set():
            try:
                self._reap()
                if max_jobs is not None and len(self.finished) >= max_jobs and not self.running:
                    break
                if time.monotonic() - last_beat > self.heartbeat_s:
                    self._heartbeat()
                    last_beat = time.monotonic()
                free = self.max_sources - len(self.running)
                if free <= 0:
                    stop.wait(0.2)
                    continue
                for entry_id, fields, resumed in self._take(free):
                    self._start(entry_id, fields, resumed)
                backoff.succeeded()
            except REDIS_DOWN as exc:  # a Redis restart: running jobs buffer and go on
                backoff.failed(exc, stop)
        self._halt.set()  # running jobs checkpoint and are handed back to the queue
        for running in list(self.running.values()):
            running.thread.join(timeout=60)
        self._reap()
        self.close()
        restore()

    def _take(self, count: int) -> list[tuple[str, dict, bool]]:
        """Jobs of dead workers first (XAUTOCLAIM), then new ones (XREADGROUP)."""
        taken: list[tuple[str, dict, bool]] = []
        reply = self.client.xautoclaim(
            JOBS_STREAM, GROUP, self.name, min_idle_time=self.claim_idle_ms, count=count
        )
        for entry_id, fields in reply[1]:
            if fields and entry_id.decode() not in self.running:  # not one of our own
                taken.append((entry_id.decode(), fields, True))
        if len(taken) < count:
            reply = self.client.xreadgroup(
                GROUP, self.name, {JOBS_STREAM: ">"}, count=count - len(taken), block=500
            )
            for entry_id, fields in reply[0][1] if reply else []:
                taken.append((entry_id.decode(), fields, False))
        return taken

    def _heartbeat(self) -> None:
        ids = [r.entry_id for r in self.running.values()]
        if ids:
            self.client.xclaim(JOBS_STREAM, GROUP, self.name, 0, ids, justid=True)

    def _start(self, entry_id: str, fields: dict, resumed: bool) -> None:
        try:
            job = decode_job(fields)
        except WireError as exc:
            self._drop_malformed(entry_id, fields, exc)
            return
        from workers import rerun

        try:
            admission = rerun.admit(self.client, job, entry_id, takeover=resumed)
        except rerun.RerunRefused as exc:
            rerun.refuse(self.client, job, entry_id, str(exc))
            self._event(job, "job.refused", str(exc))
            self.finished.append({"entry_id": entry_id, "source_id": job.source_id,
                                  "status": "refused", "error": str(exc)})  # fmt: skip
            self.client.xack(JOBS_STREAM, GROUP, entry_id)
            return
        if not admission.run:
            self.client.xack(JOBS_STREAM, GROUP, entry_id)
            self.finished.append({"entry_id": entry_id, "source_id": job.source_id,
                                  "status": admission.status, "error": None})  # fmt: skip
            return
        running = _Running(entry_id, job, threading.Thread())
        running.thread = threading.Thread(target=self._run_job, args=(running, admission.resume),
                                          name=f"job-{job.source_id}", daemon=True)  # fmt: skip
        self.running[entry_id] = running
        running.thread.start()

    def _drop_malformed(self, entry_id: str, fields: dict, exc: WireError) -> None:
        """Ack a job that cannot be read, with a ``job.refused`` event; the worker goes on."""
        log.error("malformed job %s dropped: %s", entry_id, exc)
        self.client.xack(JOBS_STREAM, GROUP, entry_id)
        source_id = job_source_id(fields)
        self.finished.append({"entry_id": entry_id, "source_id": source_id, "status": "refused",
                              "error": str(exc)})  # fmt: skip
        if source_id:
            self._event(Job("", source_id), "job.refused", str(exc), entry_id=entry_id)

    def _run_job(self, running: _Running, resumed: bool) -> None:
        from pipeline.models.registry import resolve_backbone_name
        from workers.runner import SourceRun

        try:  # what a queued job may ask (workers/job_rules.py): refused before anything opens
            job = running.job = check_job(running.job, self.settings.worker)
        except JobRefused as exc:
            running.result = {"status": "failed", "error": str(exc), "frames": 0}
            self.client.hset(state_key(running.job.source_id),
                             mapping={"status": "failed", "last_error": str(exc)})  # fmt: skip
            self._event(running.job, "job.refused", str(exc))
            return
        self._event(job, "job.started", None, resumed=resumed, worker=self.name)
        try:
            settings = merge_settings(self.settings, job.settings)
            settings.backbone.name, note = resolve_backbone_name(settings.backbone)
            if note:
                self._event(job, "backbone.chosen", note, backbone=settings.backbone.name)
            prompts = self._valid_prompts(job, settings)
            backbone, segmenter, trackers = self._models(settings)
            run = SourceRun(settings, job.source, job.source_id, prompts, self.redis_url,
                            backbone=backbone, segmenter=segmenter, trackers=trackers,
                            resume=resumed, halt=self._halt)  # fmt: skip
            summary = run.run()
            running.result = {"status": summary.status, "error": summary.error,
                              "frames": summary.frames}  # fmt: skip
        except Exception as exc:  # one broken job never takes the worker down
            log.exception("job %s failed", job.source_id)
            message = redact(" ".join(str(exc).split())) or type(exc).__name__
            running.result = {"status": "failed", "error": message, "frames": 0}
            self.client.hset(state_key(job.source_id),
                             mapping={"status": "failed", "last_error": message})  # fmt: skip
        kind = {
            "failed": "job.failed",
            "stopped": "job.stopped",
            "queued": "job.handed_back",
        }.get(  # fmt: skip
            running.result["status"], "job.finished"
        )
        self._event(job, kind, running.result.get("error"), frames=running.result["frames"])

    def _valid_prompts(self, job: Job, settings: Settings) -> list[dict]:
        """The job's prompts that are valid for its source; refused ones are reported as events."""
        from pipeline.prompts import PromptError, prompts_from_json, validate_prompts
        from pipeline.sources import probe

        info = probe(job.source, settings.source)
        prompts, refused = [], []
        with confined(confinement(self.settings.worker)):  # prompt files: allowed folders only
            for i, raw in enumerate(job.prompts):
                try:
                    prompts.extend(prompts_from_json({"prompts": [raw]}))
                except PromptError as exc:
                    kind = raw.get("kind") if isinstance(raw, dict) else None
                    refused.append(str(exc.at(i, kind)))
        valid, errors = validate_prompts(prompts, info.width, info.height)
        refused.extend(str(e) for e in errors)
        for message in refused:
            self._event(job, "prompt.refused", message)
        if job.prompts and not valid:
            raise ValueError(f"every prompt of the job was refused: {'; '.join(refused)}")
        return [p.to_json() for p in valid]

    def _models(self, settings: Settings) -> tuple[Any, Any, Any]:
        """The worker's shared backbone and segmenter actors for these settings (one per config),
        and its one `TrackerActor`: no source has a model or a torch process of its own."""
        from workers.actors import start_backbone, start_segmenter, start_trackers

        keys = (settings.backbone.model_dump_json(),
                f"{settings.segmenter}|{settings.sam.model_dump_json()}")  # fmt: skip
        with self._lock:
            if keys[0] not in self._backbones:
                self._backbones[keys[0]] = start_backbone(settings)
            if keys[1] not in self._segmenters:
                self._segmenters[keys[1]] = start_segmenter(settings)
            if self._trackers is None:
                self._trackers = start_trackers()
            return self._backbones[keys[0]], self._segmenters[keys[1]], self._trackers

    def close(self) -> None:
        """End the worker's shared actors (models and trackers; `run` does when it ends)."""
        import ray

        with self._lock:
            actors = [*self._backbones.values(), *self._segmenters.values(), self._trackers]
            self._backbones, self._segmenters, self._trackers = {}, {}, None
        for actor in actors:
            if actor is not None:
                ray.kill(actor, no_restart=True)

    def _reap(self) -> None:
        for entry_id, running in list(self.running.items()):
            if running.thread.is_alive():
                continue
            if running.result.get("status") == "queued":  # handed back: claimable at once
                self.client.xclaim(JOBS_STREAM, GROUP, self.name, 0, [entry_id],
                                   idle=self.claim_idle_ms, justid=True)  # fmt: skip
            else:
                from workers.rerun import ended

                ended(
                    self.client, running.job, running.result["status"], running.result.get("error")
                )
                self.client.xack(JOBS_STREAM, GROUP, entry_id)
            del self.running[entry_id]
            self.finished.append({"entry_id": entry_id, "source_id": running.job.source_id,
                                  **running.result})  # fmt: skip

    def _event(self, job: Job, kind: str, message: str | None, **extra: Any) -> None:
        event = Event(kind, job.source_id, time.time(), message=message,
                      extra={"job_id": job.job_id, **extra})  # fmt: skip
        try:
            self.client.xadd(events_key(job.source_id), encode_event(event), maxlen=10_000)
        except redis.RedisError as exc:
            log.warning("event %s for %s not written: %s", kind, job.source_id, exc)
