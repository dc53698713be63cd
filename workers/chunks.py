"""Long archives in parallel chunks, stitched into one continuous run.

The frame range is cut into ``n`` chunks. Each chunk runs as its own source (its own source and
tracker actors; the backbone actor is shared and batches across them) and publishes to a temporary
stream. Chunk k > 0 starts ``overlap`` frames early: the objects of the prompts are found there by
their appearance (each prompt object's patch-feature prototype, enrolled on its prompt frame, is
matched as an exemplar), and tracked through the overlap. When the chunks are done, chunk k's ids
are mapped to chunk k-1's by mask IoU over the overlap frames (`pipeline.tracking.stitch`), and the
frames are published in order to ``dinotrack:<source-id>:frames`` with the global ids; the temporary
keys are removed. Only box and mask prompts can be carried into later chunks.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import ray
import redis

from pipeline.outputs.redis_streams import Publisher, PublishFailed, read_frames
from pipeline.settings import Settings
from pipeline.tracking.stitch import IdStitcher, match_ids
from pipeline.types import Event, FrameResult, Track
from pipeline.wire import source_keys
from workers.actors import start_backbone, start_segmenter, start_trackers
from workers.runner import ProgressFn, RunSummary, SourceRun, init_ray
from workers.service import merge_settings


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # first frame this chunk publishes
    end: int  # one past its last frame
    warm_start: int  # first frame it processes (start - overlap, for k > 0)


class ChunkProgress:
    """Frames published over all chunks, for one progress bar: the frames a chunk processes
    before its first published one (the overlap) are not counted, nor frames the stride skips."""

    def __init__(self, plan: list[Chunk], stride: int, on_progress: ProgressFn | None) -> None:
        self._on_progress = on_progress
        self._published = [len(range(c.start, c.end, stride)) for c in plan]
        self._warm = [len(range(c.warm_start, c.start, stride)) for c in plan]
        self._done = [0] * len(plan)
        self.total = sum(self._published)

    def for_chunk(self, k: int) -> ProgressFn:
        """The progress callback of chunk ``k`` (called with the frames it has processed)."""

        def fn(processed: int, _total: int | None) -> None:
            self._done[k] = min(max(processed - self._warm[k], 0), self._published[k])
            if self._on_progress:
                self._on_progress(sum(self._done), self.total)

        return fn


def plan_chunks(lo: int, hi: int, n: int, overlap: int, stride: int = 1) -> list[Chunk]:
    """``n`` contiguous chunks of ``[lo, hi)`` (boundaries on the stride grid from ``lo``)."""
    total = hi - lo
    n = max(1, min(n, total // max(2 * overlap, 1) or 1))
    bounds = [lo + round(total * k / n) // stride * stride for k in range(n + 1)]
    bounds[-1] = hi
    warm = (overlap // stride) * stride
    return [
        Chunk(k, bounds[k], bounds[k + 1], max(lo, bounds[k] - warm * (k > 0)))
        for k in range(n)
        if bounds[k + 1] > bounds[k]
    ]


#: CPUs one chunk keeps busy: its tracker and its share of the backbone (a single run already
#: overlaps its stages on two cores, so more chunks than CPUs / 2 only add actor start-up).
CPUS_PER_CHUNK = 2
#: Frames a chunk should have at least, so that its actors' start-up and overlap stay small.
MIN_CHUNK_FRAMES = 500


def auto_chunks(total: int, cpus: float) -> int:
    """The chunks ``cpus`` CPUs run in parallel to advantage: one per `CPUS_PER_CHUNK` CPUs, each
    at least `MIN_CHUNK_FRAMES` frames long (1 on a 2-core machine or for a short file)."""
    return max(1, min(int(cpus) // CPUS_PER_CHUNK, total // MIN_CHUNK_FRAMES))


def enrol_prompts(settings: Settings, uri: str, prompts: list[dict]) -> list[tuple[Any, Any]]:
    """(exemplar, label) for every prompt object, enrolled on its prompt frame."""
    from pipeline.models.registry import build_backbone
    from pipeline.prompts import BoxPrompt, Exemplar, MaskPrompt, prompts_from_json
    from pipeline.sources import open_source

    parsed = prompts_from_json({"prompts": prompts})
    unsupported = [p.kind for p in parsed if not isinstance(p, (BoxPrompt, MaskPrompt))]
    if unsupported:
        raise ValueError(
            f"chunked runs carry only box and mask prompts into later chunks, not "
            f"{', '.join(sorted(set(unsupported)))} — run with --chunks 1"
        )
    backbone = build_backbone(settings.backbone)
    enrolled = []
    for p in parsed:
        source = open_source(uri, "enrol", settings.source)
        try:
            image = next(source.frames(start=p.frame)).image
        finally:
            source.close()
        regions = [p.box] if isinstance(p, BoxPrompt) else list(p.object_masks().values())
        enrolled.extend((Exemplar.from_reference(image, r, backbone), p.label) for r in regions)
    return enrolled


def carried_prompts(enrolled: list[tuple[Any, Any]], frame: int, threshold: float = 0.25) -> list:
    """The enrolled prompt objects as exemplar prompts acting at ``frame`` (a later chunk)."""
    from pipeline.prompts import ExemplarPrompt

    return [
        ExemplarPrompt(exemplar=ex, frame=frame, label=label, threshold=threshold).to_json()
        for ex, label in enrolled
    ]


def run_chunked(
    settings: Settings,
    uri: str,
    source_id: str,
    prompts: list[dict],
    redis_url: str,
    chunks: int,
    overlap: int = 8,
    on_progress: ProgressFn | None = None,
) -> RunSummary:
    """Process ``uri`` in ``chunks`` parallel chunks and publish one stitched, ordered result."""
    from pipeline.sources import probe
    from pipeline.sources.positions import resolve_range

    init_ray(settings)
    info = probe(uri, settings.source)
    if not info.frames:
        raise ValueError(f"'{uri}' has no known frame count: chunks need a file or image folder")
    fps = info.fps or 25.0
    lo, hi = resolve_range(settings.source.start, settings.source.end,
                           [i / fps for i in range(info.frames)])  # fmt: skip
    plan = plan_chunks(lo, hi, chunks, overlap, settings.source.stride)
    backbone, segmenter = start_backbone(settings), start_segmenter(settings)  # load meanwhile
    trackers = start_trackers()  # one process holds every chunk's tracker
    enrolled = enrol_prompts(settings, uri, prompts) if len(plan) > 1 else []
    client = redis.Redis.from_url(redis_url)
    t0 = time.perf_counter()
    runs: list[SourceRun] = []
    progress = ChunkProgress(plan, settings.source.stride, on_progress)
    for c in plan:
        chunk_prompts = prompts if c.index == 0 else carried_prompts(enrolled, c.warm_start)
        chunk_settings = merge_settings(settings, {"source": {"start": c.warm_start, "end": c.end}})
        run = SourceRun(chunk_settings, uri, _chunk_id(source_id, c.index), chunk_prompts,
                        redis_url, backbone=backbone, segmenter=segmenter, trackers=trackers,
                        on_progress=progress.for_chunk(c.index))  # fmt: skip
        runs.append(run)
    threads = [threading.Thread(target=r.run, name=f"chunk-{i}") for i, r in enumerate(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = RunSummary(source_id, total=hi - lo, backbone=runs[0].summary.backbone)
    errors = [f"chunk {i}: {r.summary.error}" for i, r in enumerate(runs) if r.summary.error]
    publisher = Publisher(client, source_id, settings.publish)
    publisher.set_state(status="running", source=uri, total=hi - lo, last_error="")
    stitcher = IdStitcher()
    previous: list[FrameResult] = []
    for c, run in zip(plan, runs, strict=True):
        results = read_frames(client, _chunk_id(source_id, c.index), start=c.warm_start)
        overlap_frames, mapping = [], None
        for r in results:
            if r.frame_index < c.start:
                overlap_frames.append(r)
                continue
            if mapping is None:
                mapping = _mapping(stitcher, run, previous, overlap_frames)
            out = _remap(r, mapping, source_id)
            publisher.publish(out)
            summary.frames += 1
            summary.last_frame = out.frame_index
            summary.tracks.update(t.id for t in out.tracks)
        tail = read_frames(
            client, _chunk_id(source_id, c.index), start=max(c.start, c.end - overlap)
        )
        previous = [_remap(r, mapping or {}, source_id) for r in tail]
        summary.restarts += run.summary.restarts
    summary.error = "; ".join(errors) or None
    summary.seconds = time.perf_counter() - t0
    publisher.event(Event("source.error" if errors else "source.eof", source_id, time.time(),
                          message=summary.error))  # fmt: skip
    if not publisher.flush(block=True, timeout_s=settings.publish.give_up_s) and publisher.pending:
        try:
            publisher.give_up(f"Redis refused writes at the end: {publisher.last_refusal}")
        except PublishFailed as exc:
            summary.error = str(exc)
    publisher.set_state(status=summary.status, frames_done=summary.frames,
                        fps=round(summary.fps, 2), last_error=summary.error or "")  # fmt: skip
    publisher.flush(block=True, timeout_s=settings.publish.give_up_s)
    summary.publish = {
        "published": publisher.stats.published,
        "duplicates": publisher.stats.duplicates,
        "dropped": publisher.stats.dropped,
    }
    for c in plan:
        _cleanup(client, _chunk_id(source_id, c.index))
    for actor in (backbone, segmenter, trackers):
        if actor is not None:
            ray.kill(actor, no_restart=True)
    return summary


def _mapping(stitcher: IdStitcher, run: SourceRun, previous: list[FrameResult],
             overlap_frames: list[FrameResult]) -> dict[int, int]:  # fmt: skip
    ids = run.summary.tracks
    matches = match_ids(previous, overlap_frames, min_iou=0.2) if previous else {}
    return stitcher.mapping(ids, matches)


def _remap(result: FrameResult, mapping: dict[int, int], source_id: str) -> FrameResult:
    tracks = [
        Track(mapping.get(t.id, t.id), t.label, t.state, t.score, t.box, t.mask)
        for t in result.tracks
    ]
    return FrameResult(source_id, result.frame_index, result.pts, result.wall_time, result.width,
                       result.height, result.backbone, tracks)  # fmt: skip


def _chunk_id(source_id: str, index: int) -> str:
    return f"{source_id}~chunk{index}"


def _cleanup(client: redis.Redis, chunk_source_id: str) -> None:
    client.delete(*source_keys(chunk_source_id))
