"""Ray actors, one per pipeline stage: decode -> features -> tracking -> publish.

Frames travel through Ray's object store as references (numpy arrays are zero-copy there); no
stage pulls whole frames through the driver. Each actor declares a fraction of a CPU so that all
stages of several sources fit on a small machine, and sets its own compute thread counts.

Each source has its own `SourceActor` and `PublisherActor`; the model stages are shared by every
source of a worker: one `BackboneActor` (per backbone config), one `SegmenterActor` for SAM, and one
`TrackerActor` holding each source's tracker as a session. Each actor is given only the part of the
settings it uses, and this module imports nothing heavy: an actor's process loads only what its
stage needs (the source and publisher processes never import torch, which costs seconds of CPU and
~300 MB per process).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray

from pipeline.types import Event, FeatureMap, Frame, FrameResult
from workers.metrics import MetricsBuffer

if TYPE_CHECKING:
    from pipeline.models.config import BackboneConfig, SegmenterConfig
    from pipeline.outputs.config import PublishConfig
    from pipeline.settings import Settings
    from pipeline.sources.config import SourceConfig

STAGE_CPUS = 0.05  # logical: lets ~10 sources' stages share one CPU of a node


class _Metered:
    """Actors record metrics into a buffer; the driver drains and applies them to its registry."""

    metrics: MetricsBuffer

    def drain_metrics(self) -> list:
        return self.metrics.drain()

    def pid(self) -> int:
        return os.getpid()


def _compute_threads(n: int) -> None:
    """Torch's and OpenCV's thread pools of this actor's process (several actors share a core:
    pools sized to the machine would oversubscribe it)."""
    import cv2
    import torch

    torch.set_num_threads(max(1, n))
    cv2.setNumThreads(max(1, n))


@dataclass
class FrameMeta:
    """What the driver needs to know about a decoded frame, without the pixels."""

    index: int | None  # None at the end of the source or after an error
    pts: float = 0.0
    error: str | None = None
    events: list[Event] = field(default_factory=list)
    dropped: int = 0


@ray.remote(num_cpus=STAGE_CPUS)
class SourceActor(_Metered):
    """Decodes one source; `next` returns (small metadata, frame) as two objects."""

    def __init__(self, uri: str, source_id: str, config: SourceConfig, start: int = 0):
        from pipeline.sources import open_source

        self.metrics = MetricsBuffer()
        self.source_id = source_id
        # live sources report events from their reader thread: deque appends/pops are atomic
        self._events: collections.deque[Event] = collections.deque()
        self._source = open_source(uri, source_id, config, on_event=self._events.append)
        self._frames = self._source.frames(start=start)

    def get_info(self) -> dict[str, Any]:
        return self._source.info.to_dict()

    def _drain(self) -> list[Event]:
        return [self._events.popleft() for _ in range(len(self._events))]

    @ray.method(num_returns=2)
    def next(self) -> tuple[FrameMeta, Frame | None]:
        from pipeline.sources import SourceError

        dropped = int(getattr(self._source, "dropped", 0))
        t0 = time.perf_counter()
        try:
            frame = next(self._frames)
        except StopIteration:
            return FrameMeta(None, events=self._drain(), dropped=dropped), None
        except SourceError as exc:
            return FrameMeta(None, error=str(exc), events=self._drain(), dropped=dropped), None
        self.metrics.observe_stage("decode", self.source_id, time.perf_counter() - t0)
        self.metrics.count_frames(self.source_id, "in")
        return FrameMeta(frame.index, frame.pts, events=self._drain(), dropped=dropped), frame

    def close(self) -> None:
        self._source.close()


@ray.remote(num_cpus=STAGE_CPUS, max_concurrency=64)
class BackboneActor(_Metered):
    """Computes patch features for every source of a worker, batching concurrent requests.

    Requests from several sources that arrive within ``wait_ms`` of each other go through the
    model together (up to the backbone's ``batch_size``).
    """

    def __init__(self, config: BackboneConfig, threads: int | None = None, wait_ms: float = 5.0):
        from pipeline.models.registry import build_backbone

        _compute_threads(threads or max(1, (os.cpu_count() or 2) - 1))
        self.metrics = MetricsBuffer()
        t0 = time.perf_counter()
        self.backbone = build_backbone(config)
        self.load_s = time.perf_counter() - t0
        self.metrics.observe_model_load(self.backbone.name, self.load_s)
        self.batch_size = config.batch_size
        self.wait_s = wait_ms / 1000
        self.batches: list[int] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, daemon=True, name="backbone-batcher").start()

    def name(self) -> str:
        return self.backbone.name

    def stats(self) -> dict[str, Any]:
        sizes = self.batches
        return {"load_s": self.load_s, "batches": len(self.batches),
                "mean_batch": sum(sizes) / len(sizes) if sizes else 0.0}  # fmt: skip

    def stride(self) -> int:
        return self.backbone.stride

    def features(self, frame: Frame) -> FeatureMap:
        t0 = time.perf_counter()
        [result] = self.features_of([frame.image])
        self.metrics.observe_stage("features", frame.source_id, time.perf_counter() - t0)
        return result

    def features_of(self, images: list) -> list[FeatureMap]:
        """Features of several images (they join the batches of concurrent requests)."""
        futures = []
        for image in images:
            future: concurrent.futures.Future = concurrent.futures.Future()
            self._queue.put((image, future))
            futures.append(future)
        return [f.result() for f in futures]

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self.batches.append(len(batch))
            del self.batches[:-1000]
            self.metrics.observe_batch(len(batch))
            try:
                maps = self.backbone.features([image for image, _ in batch])
            except Exception as exc:  # every waiting caller gets the error
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), fmap in zip(batch, maps, strict=True):
                future.set_result(fmap)


def _gpu_share(settings: Settings) -> float:
    """``ray.model_gpus``, or half a GPU per model actor where Ray sees GPUs (else none)."""
    if settings.ray.model_gpus is not None:
        return settings.ray.model_gpus
    return 0.5 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def start_backbone(settings: Settings) -> Any:
    """A `BackboneActor` for these settings (restarted by Ray if it dies)."""
    gpus = _gpu_share(settings)
    return BackboneActor.options(max_restarts=-1, num_gpus=gpus).remote(settings.backbone)


@ray.remote(num_cpus=STAGE_CPUS, max_concurrency=8)
class SegmenterActor(_Metered):
    """A heavy segmenter (SAM) shared by the trackers of a worker; used on keyframes only."""

    def __init__(self, name: str, config: SegmenterConfig):
        from pipeline.models.registry import build_segmenter

        _compute_threads(max(1, (os.cpu_count() or 2) - 1))
        self.metrics = MetricsBuffer()
        t0 = time.perf_counter()
        self.segmenter = build_segmenter(name, config)
        self.metrics.observe_model_load(name, time.perf_counter() - t0)
        self._lock = threading.Lock()

    def segment(self, image: Any, features: FeatureMap, requests: list) -> list:
        with self._lock:  # one image embedding at a time
            return self.segmenter.segment(image, features, requests)


class RemoteSegmenter:
    """The `Segmenter` protocol over a `SegmenterActor` (what a tracker holds in a worker)."""

    def __init__(self, handle: Any, name: str):
        self.handle = handle
        self.name = name

    def segment(self, image: Any, features: FeatureMap, requests: list) -> list:
        return ray.get(self.handle.segment.remote(image, features, requests))


class RemoteBackbone:
    """The `Backbone` protocol over a `BackboneActor` (for enrolling exemplars in a tracker)."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.name, self.stride = ray.get([handle.name.remote(), handle.stride.remote()])

    def features(self, images: list) -> list[FeatureMap]:
        return ray.get(self.handle.features_of.remote(list(images)))


def start_segmenter(settings: Settings) -> Any:
    """A shared `SegmenterActor` for heavy segmenters; None for ``none`` (built in each tracker)."""
    if settings.segmenter == "none":
        return None
    gpus = _gpu_share(settings)
    return SegmenterActor.options(max_restarts=-1, num_gpus=gpus).remote(
        settings.segmenter, settings.sam
    )


class TrackerGone(RuntimeError):
    """A call for a tracker session the `TrackerActor` does not hold (closed, or lost when the
    actor's process died and Ray restarted it): the run restarts from its checkpoint."""


@dataclass
class _Session:
    """One source's tracker inside the shared `TrackerActor`, and the turn of its next call."""

    source_id: str
    tracker: Any
    cond: asyncio.Condition
    next_seq: int = 0
    last_index: int | None = None
    closed: bool = False


@ray.remote(num_cpus=STAGE_CPUS, max_restarts=-1)
class TrackerActor(_Metered):
    """Holds the trackers of every source of a worker (each one's bounded memory) in one process.

    One process per worker instead of one per source: each Python process that imports torch
    holds about 300 MB of its own (``import torch`` alone: ~280 MB USS), so a process per source
    made every extra source cost ~450 MB. A source opens a session (`open`) and numbers its calls
    (``seq`` 0, 1, 2 ... per session): Ray may start an async actor's calls in any order, the
    session runs them in the order the source sent them, so checkpoints (`snapshot`) see exactly
    the frames submitted before them. Steps of different sources run at the same time on a pool
    of threads (torch releases the GIL). Models a tracker needs beside the shared backbone and
    segmenter actors (the text detector of text prompts) are built once here for all sessions.
    """

    def __init__(self, threads: int | None = None):
        _compute_threads(1)
        self.metrics = MetricsBuffer()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads or max(1, os.cpu_count() or 2), thread_name_prefix="tracker"
        )
        self._sessions: dict[str, _Session] = {}
        self._text_detectors: dict[tuple, Any] = {}
        self._text_lock = threading.Lock()
        self._opened: collections.deque[str] = collections.deque(maxlen=1000)  # source ids

    @ray.method(max_task_retries=3)  # a call while Ray restarts the process waits for it
    async def open(
        self,
        source_id: str,
        settings: Settings,
        backbone_name: str,
        prompts: list[dict],
        state: dict | None = None,
        segmenter: Any = None,
        backbone: Any = None,
    ) -> str:
        """A new session for ``source_id`` (from ``state``, a checkpoint, or with ``prompts``)."""
        args = (source_id, settings, backbone_name, prompts, state, segmenter, backbone)
        loop = asyncio.get_running_loop()
        tracker = await loop.run_in_executor(self._pool, self._build, *args)
        session = uuid.uuid4().hex  # never one of a previous process's
        self._sessions[session] = _Session(source_id, tracker, asyncio.Condition())
        self._opened.append(source_id)
        return session

    def _build(
        self,
        source_id: str,
        settings: Settings,
        backbone_name: str,
        prompts: list[dict],
        state: dict | None,
        segmenter: Any,
        backbone: Any,
    ) -> Any:
        from pipeline.models.registry import build_segmenter
        from pipeline.prompts import PromptSchedule, prompts_from_json
        from pipeline.tracking.tracker import Tracker

        if segmenter is None:
            segmenter = build_segmenter(settings.segmenter, settings.sam)
        else:
            segmenter = RemoteSegmenter(segmenter, settings.segmenter)
        parsed = prompts_from_json({"prompts": prompts})
        text_detector = None
        if any(p.needs_text_detector for p in parsed):
            text_detector = self._text_detector(settings.backbone)
        schedule = PromptSchedule(
            segmenter,
            text_detector=text_detector,
            backbone=None if backbone is None else RemoteBackbone(backbone),
        )
        tracker = Tracker(source_id, settings.tracker, segmenter, backbone_name, prompts=schedule)
        if state is not None:
            tracker.load_state_dict(state)
        else:
            schedule.add(parsed)
        return tracker

    def _text_detector(self, config: BackboneConfig) -> Any:
        """The text detector for this device and cache, loaded once for every session."""
        from pipeline.models.text_detector import TextDetector

        key = (config.device, str(config.cache_dir))
        with self._text_lock:
            if key not in self._text_detectors:
                self._text_detectors[key] = TextDetector(
                    device=config.device, cache_dir=config.cache_dir
                )
            return self._text_detectors[key]

    async def _in_turn(self, session: str, seq: int, fn: Any, *args: Any) -> Any:
        """``fn(session, *args)`` on the thread pool once every earlier call of the session ran."""
        s = self._sessions.get(session)
        if s is None:
            raise TrackerGone(f"no tracker session {session} here (closed, or the actor restarted)")
        async with s.cond:
            await s.cond.wait_for(lambda: s.closed or s.next_seq == seq)
        if s.closed:
            raise TrackerGone(f"the tracker session of '{s.source_id}' was closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, s, *args)
        finally:
            async with s.cond:
                s.next_seq += 1
                s.cond.notify_all()

    async def step(
        self, session: str, seq: int, frame: Frame, features: FeatureMap
    ) -> tuple[FrameResult, list[Event]]:
        return await self._in_turn(session, seq, self._step, frame, features)

    def _step(self, s: _Session, frame: Frame, features: FeatureMap) -> tuple:
        t0 = time.perf_counter()
        result = s.tracker.step(frame, features)
        self.metrics.observe_stage("track", s.source_id, time.perf_counter() - t0)
        s.last_index = frame.index
        return result, s.tracker.pop_events()

    async def add_prompts(self, session: str, seq: int, prompts: list[dict]) -> None:
        from pipeline.prompts import prompts_from_json

        def add(s: _Session) -> None:
            s.tracker.prompts.add(prompts_from_json({"prompts": prompts}))

        await self._in_turn(session, seq, add)

    async def remove_track(self, session: str, seq: int, track_id: int) -> None:
        await self._in_turn(session, seq, lambda s: s.tracker.remove_track(track_id))

    async def snapshot(self, session: str, seq: int) -> tuple[int | None, dict]:
        """(last processed frame index, tracker state) for a checkpoint."""
        return await self._in_turn(session, seq, lambda s: (s.last_index, s.tracker.state_dict()))

    async def close(self, session: str) -> None:
        """Drop a session (its calls still waiting for their turn raise `TrackerGone`)."""
        s = self._sessions.pop(session, None)
        if s is not None:
            async with s.cond:
                s.closed = True
                s.cond.notify_all()

    def sessions(self) -> list[str]:
        """The source ids of the open sessions."""
        return [s.source_id for s in self._sessions.values()]

    def opened(self) -> list[str]:
        """The source ids of the sessions opened by this process, in order (the last 1000)."""
        return list(self._opened)


def start_trackers() -> Any:
    """A `TrackerActor` for the trackers of every source of a worker (restarted if it dies)."""
    return TrackerActor.remote()


class TrackerSession:
    """One source's calls to a shared `TrackerActor`, numbered in the order they are made."""

    def __init__(self, actor: Any, session: str):
        self.actor = actor
        self.session = session
        self._seq = itertools.count()

    def step(self, frame: Any, features: Any) -> Any:
        return self.actor.step.remote(self.session, next(self._seq), frame, features)

    def add_prompts(self, prompts: list[dict]) -> Any:
        return self.actor.add_prompts.remote(self.session, next(self._seq), prompts)

    def remove_track(self, track_id: int) -> Any:
        return self.actor.remove_track.remote(self.session, next(self._seq), track_id)

    def snapshot(self) -> Any:
        return self.actor.snapshot.remote(self.session, next(self._seq))

    def close(self) -> Any:
        return self.actor.close.remote(self.session)


@ray.remote(num_cpus=STAGE_CPUS)
class PublisherActor(_Metered):
    """Writes a source's results, events, state and checkpoints to Redis."""

    def __init__(self, redis_url: str, source_id: str, config: PublishConfig):
        from pipeline.outputs.redis_streams import Publisher, connect

        self.publisher = Publisher(connect(redis_url), source_id, config)
        self.metrics = MetricsBuffer()
        self._reported = (0, 0, 0)  # errors, retries, dropped already counted

    def publish(self, step: tuple[FrameResult, list[Event]]) -> tuple[int, list[int]]:
        """Queue one step's result and events; returns (frame index, track ids)."""
        t0 = time.perf_counter()
        result, events = step
        for event in events:
            self.publisher.event(event)
        self.publisher.publish(result)
        self._count(time.perf_counter() - t0)
        return result.frame_index, [t.id for t in result.tracks]

    def _count(self, seconds: float) -> None:
        sid, st = self.publisher.source_id, self.publisher.stats
        self.metrics.observe_stage("publish", sid, seconds)
        self.metrics.count_frames(sid, "out")
        errors, retries, dropped = len(st.errors), st.retries, st.dropped
        old = self._reported
        if (errors, retries) != old[:2]:
            self.metrics.count_publish(sid, errors=errors - old[0], retries=retries - old[1])
        if dropped != old[2]:
            self.metrics.count_frames(sid, "dropped", dropped - old[2])
        self._reported = (errors, retries, dropped)

    def events(self, events: list[Event]) -> None:
        for event in events:
            self.publisher.event(event)

    def set_state(self, fields: dict[str, Any]) -> None:
        self.publisher.set_state(**fields)

    def checkpoint(self, snapshot: tuple[int | None, dict]) -> bool:
        """Store a tracker checkpoint once every result before it is in Redis."""
        import redis

        from pipeline.outputs.checkpoints import save_checkpoint

        index, state = snapshot
        pub = self.publisher
        if index is None or pub.failure or not pub.flush(block=True, timeout_s=5.0):
            return False  # never a checkpoint past frames that are not stored
        try:
            save_checkpoint(pub.client, pub.source_id, index, state)
        except (redis.RedisError, OSError):
            return False
        return True

    def flush(self) -> dict[str, Any]:
        """Write everything queued (retrying up to ``give_up_s``); the publish figures.

        ``failure`` names the frames that could not be stored, if any (the run fails with it).
        """
        from pipeline.outputs.redis_streams import PublishFailed

        pub = self.publisher
        if not pub.flush(block=True, timeout_s=pub.config.give_up_s) and pub.pending:
            try:
                pub.give_up(f"Redis refused writes for {pub.config.give_up_s:g} s at the end: "
                            f"{pub.last_refusal}")  # fmt: skip
            except PublishFailed:
                pub.flush(block=False)  # the publish.failed event, if Redis takes it now
        s = pub.stats
        return {
            "published": s.published,
            "duplicates": s.duplicates,
            "dropped": s.dropped,
            "retries": s.retries,
            "republished": s.republished,
            "pending": pub.pending,
            "errors": s.errors[-5:],
            "failure": pub.failure,
        }
