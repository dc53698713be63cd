"""The service layer's costs: Ray + Redis overhead, concurrent sources, chunks, live latency.

1. overhead: end-to-end fps of `run_source` (Ray actors, embedded Redis) against the same backbone,
   tracker and publisher in one plain loop, on the same archive and settings, alternated (A B A B)
   in one process so both see the same machine load. Reported per run and as medians, both over
   the whole run (model loading and actor start included; Ray itself is started once before, its
   ``ray.init`` time is reported apart) and in steady state (first to last published frame).
2. concurrency: N sources (same clip, distinct ids) through one `Worker` with ``max_sources`` = N:
   total throughput (also from the moment every source has published: actor start excluded),
   per-source fps (from each source's state hash), fairness (min/max, Jain's index).
3. chunks: the archive in ``--chunks`` parallel chunks (`run_chunked`) against one `run_source`,
   alternated ``--chunk-repeats`` times: wall time, CPU time, speed-up, the stitched ids against the
   unchunked run's, their agreement (per frame: the set of ids with a mask; per id: mask IoU) and
   each run's mask IoU with the ground truth.
4. live: a paced MJPEG stream served over HTTP on 127.0.0.1 (the clip's frames as JPEG parts at
   ``--live-fps``) run through `SourceRun`; a consumer XREADs the frames stream and records receive
   time minus each entry's ``wall_time`` (when the frame was decoded from the stream); after
   ``--live-frames`` frames a stop goes through the control stream. p50/p95/max and drops, for
   each stream rate and publisher batch size (results reach Redis a batch at a time, so the batch
   bounds the latency from below at low frame rates).

The archive of parts 1 and 3 is generated from a DAVIS sequence (``--archive-seq``): its frames
forwards, backwards, forwards... (one continuous motion, ground truth for every frame) as an image
folder of ``--archive-frames`` links, prompted with the ground-truth mask of its first frame. A
sequence is used where the unchunked run follows the object throughout, so that the chunked run's
ids can be compared with it (on 01_dog the unchunked track is lost after ~90 frames).

5. memory: peak memory of this process and all its descendants (Ray's processes and every actor)
   while one worker runs 1, then N sources at once (``--memory-sources``); the difference divided
   by N-1 is the memory of one extra source. PSS (shared pages split between the processes that
   share them) where Linux gives it, RSS otherwise; per process kind at the peak, and the peaks of
   the middle and last thirds of each run (memory that grows while sources run).

Usage: ``python benchmarks/service.py [--parts overhead,concurrency,chunks,live,memory]``; prints
JSON.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

# One BLAS thread (set before numpy): multi-threaded OpenBLAS is erratic on a shared machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
import redis
import torch

from pipeline.masks import mask_iou, rle_decode, rle_encode
from pipeline.models.registry import build_backbone, build_segmenter
from pipeline.outputs.redis_streams import Publisher, connect, read_frames
from pipeline.prompts import prompts_from_json
from pipeline.settings import Settings, load_settings
from pipeline.sources import open_source
from pipeline.tracking.tracker import Tracker
from pipeline.types import FrameResult
from pipeline.wire import Job, control_key, encode_control, frames_key, state_key
from workers.chunks import run_chunked
from workers.embedded_redis import EmbeddedRedis
from workers.runner import SourceRun, init_ray, run_source
from workers.service import Worker, submit_job

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEFAULT_CLIP = DATA / "footage" / "01_dog.mp4"
DAVIS = DATA / "davis2016-dev"
DOG_BOX_720P = (450.0, 380.0, 700.0, 550.0)  # the dog at frame 0, in 1280x720 pixels
PARTS = ("overhead", "concurrency", "chunks", "live", "memory")


def load_avg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def box_prompts(short_side: int, source_height: int = 720) -> list[dict]:
    """The dog's box prompt in the decoded frame's pixels (decoded at ``short_side``; 0: the
    clip's own size)."""
    scale = (short_side or source_height) / source_height
    return [{"kind": "box", "box": [round(v * scale, 2) for v in DOG_BOX_720P], "frame": 0}]


def make_settings(args: argparse.Namespace, end: int | None) -> Settings:
    """The benchmark's settings; ``end`` limits the frames decoded (None: all)."""
    return load_settings(
        backbone={"name": args.backbone, "short_side": args.model_short_side},
        source={"resize_short_side": args.short_side or None, "end": end},
        ray={"num_cpus": args.ray_cpus, "max_in_flight": args.max_in_flight},
    )


class CpuMeter:
    """CPU seconds (user + system) of this process and its descendants (Ray's own processes and
    the actors) while in the ``with`` block: on a shared machine the wall time of a run depends on
    how many processes it has (the scheduler shares the CPUs out per process), its CPU time does
    not. Processes are sampled every ``period`` s, so one that ends loses at most that much."""

    def __init__(self, period: float = 0.25):
        self.period = period
        self.seconds = 0.0
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, new_from_zero: bool) -> None:
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.Error:  # ended meanwhile
                continue
            self._first.setdefault(proc.pid, 0.0 if new_from_zero else t.user + t.system)
            self._last[proc.pid] = t.user + t.system

    def _loop(self) -> None:
        while not self._done.wait(self.period):
            self._sample(new_from_zero=True)

    def __enter__(self) -> CpuMeter:
        self._sample(new_from_zero=False)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._sample(new_from_zero=True)
        self.seconds = round(sum(v - self._first[p] for p, v in self._last.items()), 1)


def fps_figures(
    frames: int, seconds: float, t0: float, first: float | None, last: float | None
) -> dict:
    """Whole-run fps, time to the first published frame, and fps from the first to the last."""
    steady = (frames - 1) / (last - first) if first is not None and last and last > first else 0.0
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 3),
            "first_frame_s": round(first - t0, 3) if first is not None else None,
            "steady_fps": round(steady, 3)}  # fmt: skip


def run_plain(settings: Settings, uri: str, source_id: str, prompts: list[dict], url: str) -> dict:
    """The same stages in one process: decode -> features -> track -> publish + flush."""
    t0 = time.perf_counter()
    backbone = build_backbone(settings.backbone)
    segmenter = build_segmenter(settings.segmenter, settings.sam)
    tracker = Tracker(source_id, settings.tracker, segmenter, backbone.name)
    tracker.prompts.add(prompts_from_json({"prompts": prompts}))
    publisher = Publisher(connect(url), source_id, settings.publish)
    source = open_source(uri, source_id, settings.source)
    frames, first, last = 0, None, None
    try:
        for frame in source.frames():
            fmap = backbone.features([frame.image])[0]
            result = tracker.step(frame, fmap)
            for event in tracker.pop_events():
                publisher.event(event)
            publisher.publish(result)
            frames += 1
            last = time.perf_counter()
            first = first or last
    finally:
        source.close()
    publisher.flush(block=True)
    seconds = time.perf_counter() - t0
    return fps_figures(frames, seconds, t0, first, last)


def run_ray(settings: Settings, uri: str, source_id: str, prompts: list[dict], url: str) -> dict:
    """`run_source` through the Ray actors (its own backbone actor, like a one-source run)."""
    stamps: list[float] = []

    def on_progress(done: int, total: int | None) -> None:
        stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    summary = run_source(settings, uri, source_id, prompts, url, on_progress=on_progress)
    seconds = time.perf_counter() - t0
    if summary.error:
        raise RuntimeError(f"ray run of {source_id} failed: {summary.error}")
    return fps_figures(summary.frames, seconds, t0, stamps[0] if stamps else None,
                       stamps[-1] if stamps else None)  # fmt: skip


class Archive:
    """A long archive made of a DAVIS sequence played forwards and backwards in turn (see the
    module's docstring): an image folder of links, its ground truth and its first-frame prompt."""

    def __init__(self, args: argparse.Namespace, folder: Path):
        seq = args.archive_seq
        images = sorted((DAVIS / "JPEGImages" / "480p" / seq).glob("*.jpg"))
        if not images:
            raise SystemExit(f"DAVIS sequence '{seq}' not found under {DAVIS}")
        cycle = [*range(len(images)), *range(len(images) - 2, 0, -1)]
        self.order = [cycle[i % len(cycle)] for i in range(args.archive_frames)]
        folder.mkdir()
        for i, k in enumerate(self.order):
            (folder / f"{i:05d}.jpg").symlink_to(images[k])
        self.uri = str(folder)
        self.seq = seq
        source = open_source(self.uri, "archive", make_settings(args, None).source)
        self.size = (source.info.width, source.info.height)
        source.close()
        self._masks = DAVIS / "Annotations" / "480p" / seq
        self.prompts = [{"kind": "mask", "rle": rle_encode(self.truth(0)), "frame": 0}]

    def truth(self, index: int) -> np.ndarray:
        """The ground-truth mask of archive frame ``index`` at the decoded size."""
        png = cv2.imread(str(self._masks / f"{self.order[index]:05d}.png"), cv2.IMREAD_GRAYSCALE)
        return cv2.resize(png, self.size, interpolation=cv2.INTER_NEAREST) > 127

    def describe(self) -> str:
        w, h = self.size
        return (f"DAVIS-2016 '{self.seq}' ({max(self.order) + 1} frames) played forwards and "
                f"backwards in turn: {len(self.order)} frames, decoded at {w}x{h}, prompted with "
                "the ground-truth mask of frame 0")  # fmt: skip

    def mean_iou(self, results: list[FrameResult]) -> float:
        """Per frame, the best mask IoU of a track with the ground truth; averaged."""
        best = [max([mask_iou(t.mask_array(), self.truth(r.frame_index)) for t in r.tracks
                     if t.mask is not None] or [0.0]) for r in results]  # fmt: skip
        return round(float(np.mean(best)), 4) if best else 0.0


def part_overhead(args: argparse.Namespace, archive: Archive, url: str) -> dict:
    settings = make_settings(args, None)
    runs: dict[str, list[dict]] = {"plain": [], "ray": []}
    for rep in range(args.repeats):
        for kind, fn in (("plain", run_plain), ("ray", run_ray)):
            with CpuMeter() as cpu:
                run = fn(settings, archive.uri, f"overhead-{kind}-{rep}", archive.prompts, url)
            runs[kind].append({**run, "cpu_s": cpu.seconds, "load_avg_after": load_avg()})
    out: dict[str, Any] = {"archive": archive.describe(), "runs": runs,
                           "order": "plain, ray alternated"}  # fmt: skip
    for key in ("fps", "steady_fps"):
        plain = statistics.median(r[key] for r in runs["plain"])
        ray_ = statistics.median(r[key] for r in runs["ray"])
        out[f"median_{key}"] = {"plain": round(plain, 3), "ray": round(ray_, 3),
                                "overhead_pct": round(100 * (plain / ray_ - 1), 1)}  # fmt: skip
    out["overhead_definition"] = "plain_fps / ray_fps - 1 (extra time per frame through Ray+Redis)"
    return out


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if values else 0.0


def poll_progress(client: redis.Redis, ids: list[str], done: threading.Event,
                  warm: list[tuple[float, int]]) -> None:  # fmt: skip
    """Record (time, total frames done) when every source has reported progress (state hash,
    written every 25 frames): from then on all sources run at once, their actors started."""
    while not done.wait(0.25):
        counts = [int(client.hget(state_key(sid), "frames_done") or 0) for sid in ids]
        if min(counts) > 0:
            warm.append((time.perf_counter(), sum(counts)))
            return


def part_concurrency(args: argparse.Namespace, uri: str, url: str) -> dict:

    client = redis.Redis.from_url(url)
    prompts = box_prompts(args.short_side)
    out: dict[str, Any] = {}
    for n in args.concurrency:
        settings = make_settings(args, args.concurrency_frames)
        settings.worker.allowed_roots = [Path(uri).resolve().parent]  # the jobs' clip
        ids = [f"conc{n}-{i}" for i in range(n)]
        worker = Worker(settings, url, name=f"bench-{n}", max_sources=n)
        for sid in ids:
            submit_job(client, Job(uri, sid, prompts))
        t0 = time.perf_counter()
        done = threading.Event()
        warm: list[tuple[float, int]] = []  # (time, frames done) when every source reported 25
        poller = threading.Thread(target=poll_progress, args=(client, ids, done, warm))
        poller.start()
        worker.run(max_jobs=n)
        wall = time.perf_counter() - t0
        done.set()
        poller.join()
        failed = [j for j in worker.finished if j.get("status") != "finished"]
        if failed:
            raise RuntimeError(f"concurrency {n}: jobs did not finish: {failed}")
        results = {sid: list(read_frames(client, sid)) for sid in ids}
        frames = [len(results[sid]) for sid in ids]
        after = (sum(frames) - warm[0][1]) / (t0 + wall - warm[0][0]) if warm else 0.0
        per_source = [float(client.hget(state_key(sid), "fps") or 0) for sid in ids]
        out[str(n)] = {
            "sources": n,
            "frames_per_source": frames,
            "wall_s": round(wall, 2),
            "total_fps": round(sum(frames) / wall, 3),
            "all_running_after_s": round(warm[0][0] - t0, 2) if warm else None,
            "total_fps_once_all_running": round(after, 3) if warm else None,
            "per_source_fps": per_source,
            "per_source_fps_source": "state hash 'fps': frames / the run's seconds (actor start "
            "included)",
            "min_max_ratio": round(min(per_source) / max(per_source), 3),
            "jain_index": round(jain(per_source), 4),
        }
    return out


def process_kind(proc: psutil.Process) -> str:
    """What a process is: a Ray actor's class (its title ``ray::Class.method``), a Ray daemon
    (``raylet``, ``gcs_server`` ...), or this driver."""
    if proc.pid == os.getpid():
        return "driver"
    cmd = proc.cmdline()
    head = cmd[0] if cmd else proc.name()
    if head.startswith("ray::"):
        return head[5:].split(".")[0].split()[0] or "ray::idle"
    names = [Path(part).name for part in cmd[:3]]
    for name in names:
        if name.endswith(".py"):
            return name
    return names[0] if names else proc.name()


class MemoryMeter:
    """Peak of the summed memory (PSS, or RSS where PSS is not available) of this process and
    its descendants, sampled every ``period`` s while in the ``with`` block."""

    def __init__(self, period: float = 0.5):
        self.period = period
        self.peak_mb = 0.0
        self.peak_processes = 0
        self.peak_by_kind: dict[str, dict] = {}
        self.samples: list[float] = []  # total MB of each sample, in order
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        total, count = 0, 0
        kinds: dict[str, dict] = {}
        for proc in [me, *me.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
                kind = process_kind(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            size = getattr(info, "pss", info.rss)
            total += size
            count += 1
            row = kinds.setdefault(kind, {"processes": 0, "mb": 0.0})
            row["processes"] += 1
            row["mb"] = round(row["mb"] + size / 2**20, 1)
        self.samples.append(total / 2**20)
        if total / 2**20 > self.peak_mb:
            self.peak_mb, self.peak_processes = total / 2**20, count
            self.peak_by_kind = dict(sorted(kinds.items(), key=lambda kv: -kv[1]["mb"]))

    def _loop(self) -> None:
        while not self._done.wait(self.period):
            self._sample()

    def __enter__(self) -> MemoryMeter:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def growth(samples: list[float]) -> dict:
    """Peak of the second and of the last third of the samples: memory that keeps growing while
    the sources run shows as a last third above the second."""
    third = len(samples) // 3
    if third == 0:
        return {}
    middle, last = samples[third : 2 * third], samples[2 * third :]
    return {"middle_third_peak_mb": round(max(middle), 1),
            "last_third_peak_mb": round(max(last), 1)}  # fmt: skip


def part_memory(args: argparse.Namespace, uri: str, url: str) -> dict:
    import gc

    client = redis.Redis.from_url(url)
    prompts = box_prompts(args.short_side)
    out: dict[str, Any] = {}
    for n in (1, args.memory_sources):
        settings = make_settings(args, args.memory_frames)
        settings.worker.allowed_roots = [Path(uri).resolve().parent]  # the jobs' clip
        ids = [f"mem{n}-{i}" for i in range(n)]
        worker = Worker(settings, url, name=f"mem-{n}", max_sources=n)
        for sid in ids:
            submit_job(client, Job(uri, sid, prompts))
        with MemoryMeter() as meter:
            worker.run(max_jobs=n)
        gc.collect()
        failed = [j for j in worker.finished if j.get("status") != "finished"]
        if failed:
            raise RuntimeError(f"memory {n}: jobs did not finish: {failed}")
        out[str(n)] = {"sources": n, "peak_mb": round(meter.peak_mb, 1),
                       "processes_at_peak": meter.peak_processes,
                       "growth": growth(meter.samples),
                       "at_peak_by_process_kind": meter.peak_by_kind}  # fmt: skip
        time.sleep(2.0)  # killed actors' processes exit before the next measurement
    n = args.memory_sources
    extra = (out[str(n)]["peak_mb"] - out["1"]["peak_mb"]) / max(1, n - 1)
    out["per_extra_source_mb"] = round(extra, 1)
    out["measure"] = "PSS summed over this process and its descendants, peak of 0.5 s samples"
    return out


def compare_runs(a: list[FrameResult], b: list[FrameResult]) -> dict:
    """Per frame: do the ids with a mask agree; per id in both: mask IoU."""
    by_index = {r.frame_index: r for r in b}
    agree, ious, missing = 0, [], 0
    for ra in a:
        rb = by_index.get(ra.frame_index)
        if rb is None:
            missing += 1
            continue
        ma = {t.id: t.mask for t in ra.tracks if t.mask is not None}
        mb = {t.id: t.mask for t in rb.tracks if t.mask is not None}
        agree += set(ma) == set(mb)
        ious.extend(mask_iou(rle_decode(ma[i]), rle_decode(mb[i])) for i in set(ma) & set(mb))
    return {"frames_compared": len(a) - missing, "frames_missing": missing,
            "ids_agree_fraction": round(agree / max(len(a) - missing, 1), 4),
            "mean_iou_same_id": round(float(np.mean(ious)), 4) if ious else None}  # fmt: skip


def part_chunks(args: argparse.Namespace, archive: Archive, url: str) -> dict:
    client = redis.Redis.from_url(url)
    settings = make_settings(args, None)
    runs: list[dict] = []
    for rep in range(args.chunk_repeats):
        for n in (1, args.chunks):
            sid = f"chunks{n}-{rep}"
            t0 = time.perf_counter()
            with CpuMeter() as cpu:
                if n == 1:
                    summary = run_source(settings, archive.uri, sid, archive.prompts, url)
                else:
                    summary = run_chunked(settings, archive.uri, sid, archive.prompts, url,
                                          chunks=n, overlap=args.overlap)  # fmt: skip
            seconds = time.perf_counter() - t0
            if summary.error:
                raise RuntimeError(f"chunk part, {sid}: {summary.error}")
            results = list(read_frames(client, sid))
            runs.append({"chunks": n, "seconds": round(seconds, 2), "cpu_s": cpu.seconds,
                         "frames": len(results),
                         "fps": round(len(results) / seconds, 3), "ids": sorted(summary.tracks),
                         "mean_iou_ground_truth": archive.mean_iou(results),
                         "load_avg_after": load_avg(), "results": results})  # fmt: skip
    whole = [r for r in runs if r["chunks"] == 1]
    split = [r for r in runs if r["chunks"] > 1]
    pairs = list(zip(whole, split, strict=True))
    agreement = [compare_runs(a["results"], b["results"]) for a, b in pairs]
    for r in runs:
        del r["results"]
    groups = (("1", whole), (str(args.chunks), split))
    median = {k: round(statistics.median(r["seconds"] for r in rs), 2) for k, rs in groups}
    median_cpu = {k: round(statistics.median(r["cpu_s"] for r in rs), 1) for k, rs in groups}
    return {
        "archive": archive.describe(),
        "chunks": args.chunks,
        "overlap": args.overlap,
        "order": f"1 chunk, {args.chunks} chunks alternated",
        "runs": runs,
        "median_seconds": median,
        "speedup": round(median["1"] / median[str(args.chunks)], 3),
        "median_cpu_s": median_cpu,
        "cpu_ratio": round(median_cpu[str(args.chunks)] / median_cpu["1"], 3),
        "cpu_ratio_definition": "the chunked run's CPU seconds / the unchunked run's: the work "
        "the chunks add (actor processes, overlap frames), whatever the machine's load",
        "ids_equal": all(a["ids"] == b["ids"] for a, b in pairs),
        "agreement": agreement,
    }


class MjpegServer:
    """Serves JPEG frames as ``multipart/x-mixed-replace`` at a fixed rate, looping the frames."""

    def __init__(self, jpegs: list[bytes], fps: float):
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                period, t_next, i = 1.0 / fps, time.monotonic(), 0
                try:
                    while True:
                        jpeg = jpegs[i % len(jpegs)]
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                        self.wfile.write(head % len(jpeg) + jpeg + b"\r\n")
                        self.wfile.flush()
                        server.sent += 1
                        i += 1
                        t_next += period
                        time.sleep(max(0.0, t_next - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def latency_figures(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    if not len(ms):
        return {}
    return {"p50": round(float(np.percentile(ms, 50)), 1),
            "p95": round(float(np.percentile(ms, 95)), 1),
            "max": round(float(ms.max()), 1), "mean": round(float(ms.mean()), 1)}  # fmt: skip


def live_run(
    args: argparse.Namespace, jpegs: list[bytes], fps: float, batch: int, url: str
) -> dict:
    """One paced stream through `SourceRun`, stopped over the control stream after N frames."""
    from pipeline.wire import decode_frame_result

    server = MjpegServer(jpegs, fps)
    sid = f"live-{fps:g}fps-batch{batch}"
    client = redis.Redis.from_url(url)
    settings = make_settings(args, None)
    settings.source.resize_short_side = None  # the stream is already at the benchmark's size
    settings.publish.batch = batch
    latencies: list[float] = []
    indices: list[int] = []
    wanted = args.live_warmup + args.live_frames

    def consume() -> None:
        cursor = "0-0"
        while len(latencies) < wanted:
            reply = client.xread({frames_key(sid): cursor}, block=1000, count=100)
            now = time.time()
            for entry_id, fields in reply[0][1] if reply else []:
                cursor = entry_id
                result = decode_frame_result(fields)
                latencies.append(now - result.wall_time)
                indices.append(result.frame_index)
        client.xadd(control_key(sid), encode_control("stop"))

    consumer = threading.Thread(target=consume, daemon=True)
    try:
        consumer.start()
        summary = SourceRun(settings, server.url, sid, box_prompts(args.short_side), url).run()
        consumer.join(timeout=30)
    finally:
        server.close()
    steady = indices[args.live_warmup :]
    return {
        "fps_served": fps,
        "publish_batch": batch,
        "status": summary.status,
        "error": summary.error,
        "frames_served": server.sent,
        "frames_published": summary.frames,
        "first_published_index": indices[0] if indices else None,
        "latency_ms_all": latency_figures(latencies),
        "latency_ms_after_warmup": latency_figures(latencies[args.live_warmup :]),
        "dropped_after_warmup": int(steady[-1] - steady[0] + 1 - len(steady)) if steady else 0,
        "dropped_by_source_buffer_total": summary.dropped,
        "published_fps": round(summary.fps, 3),
    }


def part_live(args: argparse.Namespace, uri: str, url: str) -> dict:
    source = open_source(uri, "jpegs", make_settings(args, args.live_jpegs).source)
    try:
        images = [f.image for f in source.frames()]
    finally:
        source.close()
    params = [cv2.IMWRITE_JPEG_QUALITY, 85]
    jpegs = [cv2.imencode(".jpg", im[..., ::-1], params)[1].tobytes() for im in images]
    h, w = images[0].shape[:2]
    return {
        "stream": f"MJPEG over HTTP on 127.0.0.1, {w}x{h}, the clip's first {len(jpegs)} "
        "frames looped",
        "latency": "XREAD receive time - entry wall_time (frame decoded from the stream)",
        "warmup_frames_excluded": args.live_warmup,
        "runs": [
            live_run(args, jpegs, fps, batch, url)
            for batch in args.live_publish_batch
            for fps in args.live_fps
        ],  # fmt: skip
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {PARTS}")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--short-side", type=int, default=240,
                        help="decode short side (0: the clip's)")  # fmt: skip
    parser.add_argument("--backbone", default="mobilenetv2-imagenet")
    parser.add_argument("--model-short-side", type=int, default=224)
    parser.add_argument("--ray-cpus", type=int, default=None, help="local Ray CPUs (None: all)")
    parser.add_argument("--max-in-flight", type=int, default=8)
    parser.add_argument("--archive-seq", default="bear", help="overhead, chunks: DAVIS sequence")
    parser.add_argument("--archive-frames", type=int, default=400, help="overhead, chunks: length")
    parser.add_argument("--repeats", type=int, default=2, help="overhead: A B pairs")
    parser.add_argument("--concurrency", default="4,8", help="concurrency: source counts")
    parser.add_argument("--concurrency-frames", type=int, default=60)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--chunk-repeats", type=int, default=2, help="chunks: 1-vs-N pairs")
    parser.add_argument("--overlap", type=int, default=8, help="chunks: frames two chunks share")
    parser.add_argument("--live-frames", type=int, default=100)
    parser.add_argument("--live-fps", default="5,10", help="live: stream rates to run")
    parser.add_argument("--live-publish-batch", default="16,1", help="live: publisher batches")
    parser.add_argument("--live-warmup", type=int, default=20, help="live: first frames apart")
    parser.add_argument("--live-jpegs", type=int, default=50, help="live: clip frames looped")
    parser.add_argument("--memory-sources", type=int, default=3, help="memory: N (vs 1)")
    parser.add_argument("--memory-frames", type=int, default=60, help="memory: frames a source")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    args = parser.parse_args()
    args.concurrency = [int(v) for v in args.concurrency.split(",") if v]
    args.live_fps = [float(v) for v in args.live_fps.split(",") if v]
    args.live_publish_batch = [int(v) for v in args.live_publish_batch.split(",") if v]
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    if not args.clip.is_file():
        parser.error(f"clip '{args.clip}' not found — pass --clip PATH")
    torch.set_num_threads(args.threads)
    uri = str(args.clip)
    report: dict[str, Any] = {
        "benchmark": "service layer: Ray+Redis overhead, concurrency, chunks, live latency",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_before": load_avg(),
            "shared": True,
            "torch_threads_driver": args.threads,
        },  # fmt: skip
        "model": f"{args.backbone} at short side {args.model_short_side}, segmenter none, CPU",
        "resolution": f"decoded to short side {args.short_side or 'of the clip (720)'}",
        "data": f"overhead, chunks: DAVIS '{args.archive_seq}' looped to {args.archive_frames} "
        f"frames (see each part); concurrency, live: {args.clip.name} (dog box prompt at frame 0)",
        "args": {k: v for k, v in vars(args).items() if k != "clip"},
    }
    with tempfile.TemporaryDirectory(prefix="dinotrack-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start()
        try:
            t0 = time.perf_counter()
            init_ray(make_settings(args, None))
            report["machine"]["ray_init_s"] = round(time.perf_counter() - t0, 2)
            archive = Archive(args, Path(tmp) / "archive") if {"overhead", "chunks"} & set(parts) \
                else None  # fmt: skip
            fns = {"overhead": (part_overhead, archive), "concurrency": (part_concurrency, uri),
                   "chunks": (part_chunks, archive), "live": (part_live, uri),
                   "memory": (part_memory, uri)}  # fmt: skip
            for part in parts:
                t0 = time.perf_counter()
                fn, data = fns[part]
                report[part] = fn(args, data, url)
                report[part]["part_wall_s"] = round(time.perf_counter() - t0, 1)
                print(json.dumps({part: report[part]}), flush=True)
        finally:
            server.stop()
    report["machine"]["load_avg_after"] = load_avg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
