"""Runs one source through the Ray actors: bounded frames in flight, checkpoints, recovery, control.

The driver never touches pixels: it asks the source actor for the next frame and hands the frame's
object reference to the backbone, the tracker and the publisher. At most ``ray.max_in_flight``
frames of a source are between decode and publish, so a slow stage slows the source down instead
of filling memory. Every ``checkpoint_every`` frames the tracker's state goes to Redis (after the
results before it); if an actor of the run dies (a crash, ``kill -9``), the run starts new actors
from the last checkpoint and goes on: frames published twice are skipped by the idempotent
publisher, so the stream stays complete, ordered and free of duplicates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
import redis

from pipeline.confine import confined
from pipeline.settings import Settings
from pipeline.types import Event
from pipeline.wire import control_key, decode_control
from workers.actors import (
    PublisherActor,
    SourceActor,
    TrackerGone,
    TrackerSession,
    start_backbone,
    start_trackers,
)
from workers.job_rules import confinement
from workers.ray_cluster import init_ray

log = logging.getLogger("dinotrack.runner")


@dataclass
class RunSummary:
    source_id: str
    frames: int = 0
    seconds: float = 0.0
    tracks: set[int] = field(default_factory=set)
    last_frame: int | None = None
    error: str | None = None
    stopped: bool = False
    handed_back: bool = False
    restarts: int = 0
    publish: dict[str, Any] = field(default_factory=dict)
    backbone: str = ""
    dropped: int = 0
    total: int | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        return "queued" if self.handed_back else "stopped" if self.stopped else "finished"


class StartFailed(RuntimeError):
    """The run could not start (for example the source cannot be opened)."""


class ActorLost(RuntimeError):
    """An actor of the run died; the run restarts from its checkpoint."""


ProgressFn = Callable[[int, int | None], None]


class SourceRun:
    """One source from its first (or resumed) frame to the end, a stop, or an error.

    Args:
        settings: Effective settings for this source.
        uri: File, image folder or stream URL.
        source_id: Names the Redis keys.
        prompts: Prompt JSON dicts (``pipeline.prompts`` format), applied at their frames.
        redis_url: Where results go.
        backbone: A shared `BackboneActor` (a worker's); None creates one for this run.
        segmenter: A shared `SegmenterActor` for SAM; None builds the segmenter in the tracker.
        trackers: A shared `TrackerActor` (a worker's: one process holds the trackers of all its
            sources); None creates one for this run.
        on_progress: Called with (frames done, total) after each published frame.
        checkpoint_every: Frames between tracker checkpoints (0: none, and no recovery).
        max_restarts: Recoveries from dead actors before the run fails.
        resume: Start from the source's checkpoint in Redis, if any (a reclaimed job).
        halt: Set by a stopping worker: the run checkpoints, ends with status ``queued`` and
            leaves the job for another worker to resume.
    """

    def __init__(
        self,
        settings: Settings,
        uri: str,
        source_id: str,
        prompts: list[dict],
        redis_url: str,
        backbone: Any = None,
        segmenter: Any = None,
        trackers: Any = None,
        on_progress: ProgressFn | None = None,
        checkpoint_every: int = 50,
        max_restarts: int = 3,
        resume: bool = False,
        halt: threading.Event | None = None,
    ):
        self.settings = settings
        self.uri = uri
        self.source_id = source_id
        self.prompts = prompts
        self.redis_url = redis_url
        self.on_progress = on_progress
        self.checkpoint_every = checkpoint_every
        self.max_restarts = max_restarts
        self.resume = resume
        self.halt = halt or threading.Event()
        self.summary = RunSummary(source_id)
        self._backbone = backbone
        self._segmenter = segmenter
        self._trackers = trackers
        self._own = {name for name, actor in (("backbone", backbone), ("tracker", trackers))
                     if actor is None}  # fmt: skip
        self._tracker: TrackerSession | None = None
        self._client = redis.Redis.from_url(redis_url)
        self._control_cursor = _last_id(self._client, control_key(source_id))
        self._start_error: str | None = None
        self._frame_size = (0, 0)
        self._metric_refs: list = []
        self.actors: dict[str, Any] = {}

    def run(self) -> RunSummary:
        from pipeline.outputs.checkpoints import clear_checkpoint, load_checkpoint

        init_ray(self.settings)
        s = self.summary
        publisher = None
        t0 = time.perf_counter()
        state = None
        start = 0
        if self.resume and (ckpt := load_checkpoint(self._client, self.source_id)):
            start, state = ckpt[0] + 1, ckpt[1]
        else:
            clear_checkpoint(self._client, self.source_id)
        while True:
            try:
                publisher = self._start_actors(start, state)
                self._loop(publisher, t0)
                break
            except ActorLost as exc:
                s.restarts += 1
                self._kill_actors(keep_shared=True)
                if s.restarts > self.max_restarts or not self.checkpoint_every:
                    s.error = f"{exc} (gave up after {s.restarts - 1} restarts)"
                    break
                ckpt = load_checkpoint(self._client, self.source_id)
                start, state = (ckpt[0] + 1, ckpt[1]) if ckpt else (0, None)
                log.warning("%s: %s; restarting from frame %d", self.source_id, exc, start)
                publisher = None
            except StartFailed as exc:
                s.error = str(exc)
                break
            except ray.exceptions.RayError as exc:
                s.error = _cause(exc)
                log.error("%s failed: %s", self.source_id, s.error)
                break
        s.seconds = time.perf_counter() - t0
        self._finish(publisher)
        self._kill_actors(keep_shared=False)
        return s

    def _start_actors(self, start: int, state: dict | None) -> Any:
        """Start the run's actors all at once (their processes load in parallel)."""
        from pipeline.models.registry import resolve_backbone_name
        from pipeline.sources import is_live

        s = self.summary
        opts = {"max_restarts": 0}
        live = is_live(self.uri)
        settings = self.settings
        if live:  # a live frame goes out at once: latency over round trips
            publish = settings.publish.model_copy(update={"batch": 1})
            settings = settings.model_copy(update={"publish": publish})
        s.backbone, _ = resolve_backbone_name(settings.backbone)
        source = SourceActor.options(**opts).remote(
            self.uri, self.source_id, settings.source, start
        )
        if self._backbone is None:
            self._backbone = start_backbone(settings)
        if self._trackers is None:
            self._trackers = start_trackers()
        publisher = PublisherActor.options(**opts).remote(
            self.redis_url, self.source_id, settings.publish
        )
        session = self._trackers.open.remote(
            self.source_id, settings, s.backbone, self.prompts, state, self._segmenter,
            self._backbone,
        )  # fmt: skip
        self.actors.update(source=source, backbone=self._backbone, publisher=publisher,
                           tracker=self._trackers)  # fmt: skip
        try:
            info = ray.get(source.get_info.remote())
        except ray.exceptions.RayError as exc:  # the source could not be opened: no retry
            self._start_error = _cause(exc)
            raise StartFailed(self._start_error) from exc
        s.total = info.get("frames")
        self._frame_size = (int(info["width"]), int(info["height"]))
        status = {"status": "running", "source": self.uri, "last_error": "", "restarts": s.restarts,
                  "backbone": s.backbone}  # fmt: skip
        self._get(publisher.set_state.remote(status))
        try:
            self._tracker = TrackerSession(self._trackers, ray.get(session))
        except ray.exceptions.RayActorError as exc:  # the trackers' process died: a restart
            raise ActorLost(f"the trackers of '{self.source_id}' died: {_cause(exc)}") from exc
        except ray.exceptions.RayError as exc:  # a model or prompt that cannot load: no retry
            raise StartFailed(_cause(exc)) from exc
        if not live:  # live sources report their own (re)connections
            publisher.events.remote([self._event("source.connected", self.uri)])
        return publisher

    def _loop(self, publisher: Any, t0: float) -> None:
        s = self.summary
        source, backbone = self.actors["source"], self.actors["backbone"]
        tracker = self._tracker
        assert tracker is not None
        bound = max(1, self.settings.ray.max_in_flight)
        in_flight: deque = deque()
        since_ckpt = 0

        def settle(keep: int) -> None:
            nonlocal since_ckpt
            while len(in_flight) > keep:
                index, track_ids = self._get(in_flight.popleft())
                s.frames += 1
                s.last_frame = index
                s.tracks.update(track_ids)
                since_ckpt += 1
                if self.on_progress:
                    self.on_progress(s.frames, s.total)
                if s.frames % 25 == 0:
                    publisher.set_state.remote(self._progress(t0))
                    self._collect_metrics(len(in_flight))

        prefetch = deque(source.next.remote() for _ in range(2))
        submitted = 0
        while True:
            meta_ref, frame_ref = prefetch.popleft()
            prefetch.append(source.next.remote())
            meta = self._get(meta_ref)
            if meta.events:
                publisher.events.remote(meta.events)
            s.dropped = meta.dropped
            if meta.index is None:
                s.error = meta.error
                break
            features_ref = backbone.features.remote(frame_ref)
            step_ref = tracker.step(frame_ref, features_ref)
            in_flight.append(publisher.publish.remote(step_ref))
            submitted += 1
            settle(bound)
            if self.checkpoint_every and since_ckpt >= self.checkpoint_every:
                publisher.checkpoint.remote(tracker.snapshot())
                since_ckpt = 0
            if submitted % 10 == 0 and self._poll_control(tracker, publisher):
                break
            if self.halt.is_set():
                s.handed_back = True
                break
        settle(0)
        if self.checkpoint_every:  # the state at the end: --resume, or the next worker after a
            # hand-back, continues from here
            self._get(publisher.checkpoint.remote(tracker.snapshot()))
        self._collect_metrics(0, wait=True)

    def _collect_metrics(self, in_flight: int, wait: bool = False) -> None:
        """Bring the actors' metric records into this process's registry.

        The drains queue behind each actor's frames, so they are applied when ready (or awaited
        with ``wait`` at the end): the frame loop never stalls on them.
        """
        from workers import metrics

        metrics.set_in_flight(self.source_id, in_flight)
        self._metric_refs += [actor.drain_metrics.remote() for actor in self.actors.values()]
        ready, self._metric_refs = ray.wait(
            self._metric_refs, num_returns=len(self._metric_refs), timeout=None if wait else 0
        )
        for ref in ready:
            metrics.apply(self._get(ref))

    def _poll_control(self, tracker: TrackerSession, publisher: Any) -> bool:
        """Apply control messages; True when a stop was asked for."""
        try:
            reply = self._client.xread({control_key(self.source_id): self._control_cursor})
        except redis.RedisError as exc:
            log.warning("control stream of %s unreadable: %s", self.source_id, exc)
            return False
        for entry_id, fields in reply[0][1] if reply else []:
            self._control_cursor = entry_id
            try:
                msg = decode_control(fields)
            except ValueError as exc:
                log.warning("ignored control message %s: %s", entry_id, exc)
                publisher.events.remote([self._event("prompt.refused", str(exc))])
                continue
            if msg["op"] == "stop":
                self.summary.stopped = True
                return True
            self._apply_control(msg, tracker, publisher)
        return False

    def _apply_control(self, msg: dict[str, Any], tracker: TrackerSession, publisher: Any) -> None:
        """The valid part of a live prompt goes to the tracker, the rest to prompt.refused."""
        from workers.control import check_control

        with confined(confinement(self.settings.worker)):  # prompt files come from Redis
            checked = check_control(msg, *self._frame_size, self.summary.tracks)
        if checked.prompts and (prompts := self._control_prompts(checked.prompts)):
            tracker.add_prompts(prompts)
        if checked.track_id is not None:
            tracker.remove_track(checked.track_id)
        if checked.refused:
            log.warning("%s: refused %s", self.source_id, "; ".join(checked.refused))
            publisher.events.remote([self._event("prompt.refused", m) for m in checked.refused])

    def _control_prompts(self, raw: Any) -> list[dict]:
        """A control message's prompts, read under the worker's confinement (they come from
        Redis, as jobs do); each refused one is a ``prompt.refused`` event."""
        from pipeline.prompts import PromptError, prompts_from_json

        valid, refused = [], []
        with confined(confinement(self.settings.worker)):
            for i, prompt in enumerate(raw if isinstance(raw, list) else [raw]):
                try:
                    valid += [p.to_json() for p in prompts_from_json({"prompts": [prompt]})]
                except PromptError as exc:
                    refused.append(self._event("prompt.refused", str(exc.at(i))))
        if refused:
            self.actors["publisher"].events.remote(refused)
        return valid

    def _progress(self, t0: float) -> dict[str, Any]:
        s = self.summary
        fps = s.frames / max(time.perf_counter() - t0, 1e-9)
        lag = "" if not s.total or s.last_frame is None else s.total - 1 - s.last_frame
        return {"frames_done": s.frames, "total": s.total or "", "fps": round(fps, 2),
                "last_frame": s.last_frame if s.last_frame is not None else "", "lag": lag,
                "dropped": s.dropped}  # fmt: skip

    def _finish(self, publisher: Any) -> None:
        s = self.summary
        fields = {**self._progress(time.perf_counter() - s.seconds), "status": s.status,
                  "source": self.uri,
                  "last_error": s.error or "", "restarts": s.restarts}  # fmt: skip
        fields["fps"] = round(s.fps, 2)
        # sources report their own end and errors; only a source that never opened is reported here
        events = [self._event("source.error", self._start_error)] if self._start_error else []
        if publisher is not None:
            wait_s = self.settings.publish.give_up_s + 30
            try:
                s.publish = ray.get(publisher.flush.remote(), timeout=wait_s)
                if s.publish["failure"] and not s.error:  # frames not stored: never a success
                    s.error = s.publish["failure"]
                fields.update(status=s.status, last_error=s.error or "")
                publisher.events.remote(events)
                publisher.set_state.remote(fields)
                s.publish = ray.get(publisher.flush.remote(), timeout=wait_s)
                return
            except ray.exceptions.RayError as exc:
                log.warning("publisher of %s lost at the end: %s", self.source_id, exc)
        # no publisher (it never started or died): write the final state directly
        from pipeline.outputs.redis_streams import Publisher

        direct = Publisher(self._client, self.source_id, self.settings.publish)
        for event in events:
            direct.event(event)
        direct.set_state(**fields)
        direct.flush(block=True, timeout_s=10)

    def _kill_actors(self, keep_shared: bool) -> None:
        """End the run's own actors and its tracker session; the shared ones (a worker's backbone
        and trackers, or this run's own while it restarts: ``keep_shared``) stay."""
        self._metric_refs = []  # drains of the actors going away
        if self._tracker is not None:
            self._tracker.close()  # its calls still waiting for their turn end
            self._tracker = None
        for name, actor in list(self.actors.items()):
            if name in ("backbone", "tracker") and (keep_shared or name not in self._own):
                continue
            ray.kill(actor, no_restart=True)
            del self.actors[name]
        if not keep_shared:
            self._backbone = None if "backbone" in self._own else self._backbone
            self._trackers = None if "tracker" in self._own else self._trackers

    def _get(self, ref: Any) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            raise ActorLost(f"an actor of '{self.source_id}' died: {_cause(exc)}") from exc
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, ray.exceptions.RayActorError):
                raise ActorLost(f"an actor of '{self.source_id}' died") from exc
            if isinstance(exc.cause, TrackerGone):  # the trackers' process was restarted
                raise ActorLost(f"the tracker of '{self.source_id}' was lost: {exc.cause}") from exc
            raise

    def _event(self, kind: str, message: str | None) -> Event:
        return Event(kind=kind, source_id=self.source_id, wall_time=time.time(), message=message)


def run_source(settings: Settings, uri: str, source_id: str, prompts: list[dict],
               redis_url: str, **kwargs: Any) -> RunSummary:  # fmt: skip
    """Run one source to its end in this process's Ray (see `SourceRun`)."""
    return SourceRun(settings, uri, source_id, prompts, redis_url, **kwargs).run()


def _last_id(client: redis.Redis, key: str) -> str:
    entries = client.xrevrange(key, count=1)
    return entries[0][0].decode() if entries else "0-0"


def _cause(exc: BaseException) -> str:
    """The innermost error message of a Ray failure, without Ray's traceback decoration."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    if cause is not None and cause is not exc:
        return _cause(cause)
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
