"""How the tracker's cost grows with the number of objects, and whether its memory stays flat.

1. Per-frame Tracker time (propagation, upsampling, masks, identities, RLE) with 1 and with 20
   objects on DAVIS-sized inputs: a 480x854 frame and a 56x100x128 feature grid (the fused stride-8
   MobileNetV2 grid at short side 448). Features are synthetic (a textured scene whose objects
   drift a cell every few frames); the backbone, whose cost does not depend on the objects, is
   not included. Both counts run interleaved in one process, so they see the same machine load.
   The tracker skips neighbourhood tiles that hold no object and tiles its half-resolution
   pre-pass is sure of, so one small object costs less than a frame-filling one; the second
   measurement turns both off to compare equal work.
2. The search for lost tracks: 20 prompted objects with full appearance memories (40 frames
   followed), all lost, on the same DAVIS-sized grid; seconds per frame of their search with the
   default ``presence.searches_per_frame`` and with every lost track searched every frame.
3. Resident memory over many frames (default 10,000) of a 3-object tracker on a small synthetic
   scene: RSS sampled every 1,000 frames.

Usage: ``python benchmarks/tracker_scale.py [--frames 40] [--rss-frames 10000]``; prints JSON.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

# One BLAS thread (set before numpy): multi-threaded OpenBLAS is erratic on a shared machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import time

import numpy as np
import torch

from pipeline.masks import mask_to_box
from pipeline.models.registry import build_segmenter
from pipeline.tracking.config import PresenceConfig, TrackerConfig
from pipeline.tracking.presence import PresenceVerifier
from pipeline.tracking.tracker import Tracker, upsample_probs
from pipeline.types import FeatureMap, Frame, Observation


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic_scene(
    grid: tuple[int, int], channels: int, n_objects: int, seed: int = 0
) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray, int]:
    """Background features, object cell positions (top-left), and object features (side x side)."""
    rng = np.random.default_rng(seed)
    h, w = grid
    bg = rng.normal(size=(h, w, channels)).astype(np.float32)
    side = 6
    cols = int(np.ceil(np.sqrt(n_objects)))
    rows = int(np.ceil(n_objects / cols))
    positions = [
        (
            2 + (i // cols) * (h - side - 4) // max(rows - 1, 1),
            2 + (i % cols) * (w - side - 8) // cols,
        )
        for i in range(n_objects)
    ]
    objs = rng.normal(size=(n_objects, side, side, channels)).astype(np.float32)
    return bg, positions, objs, side


def render(
    bg: np.ndarray, positions: list[tuple[int, int]], objs: np.ndarray, side: int, shift: int
) -> np.ndarray:
    g = bg.copy()
    for (y, x), o in zip(positions, objs, strict=True):
        g[y : y + side, x + shift : x + shift + side] = o
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


def feature_map(grid: np.ndarray, image_size: tuple[int, int], stride: int) -> FeatureMap:
    h, w = grid.shape[:2]
    return FeatureMap(
        grid=grid.astype(np.float32),
        stride=stride,
        global_vec=np.full(8, 1 / np.sqrt(8), np.float32),
        input_size=(h * stride, w * stride),
        image_size=image_size,
        backbone="synthetic",
    )


def cell_mask(pos: tuple[int, int], side: int, stride_px: tuple[float, float], size) -> np.ndarray:
    m = np.zeros(size, bool)
    y, x = pos
    sy, sx = stride_px
    m[int(y * sy) : int((y + side) * sy), int(x * sx) : int((x + side) * sx)] = True
    return m


def time_objects(n_frames: int, counts: list[int], skip: bool) -> dict[str, float]:
    grid, channels, size = (56, 100), 128, (480, 854)
    stride_px = (size[0] / grid[0], size[1] / grid[1])
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)
    segmenter = build_segmenter("none")
    cfg = TrackerConfig()
    if not skip:
        off = {"skip_below": 0.0, "coarse_sure": None}  # every tile computed in full
        cfg = TrackerConfig(propagation=cfg.propagation.model_copy(update=off))
    setups = {}
    for n in counts:
        bg, pos, objs, side = synthetic_scene(grid, channels, n)
        setups[n] = (Tracker(f"n{n}", cfg, segmenter, "synthetic"), bg, pos, objs, side)
    seconds = {n: 0.0 for n in counts}
    tracked = {n: 0 for n in counts}
    for i in range(n_frames):
        shift = i // 4
        for n, (tracker, bg, pos, objs, side) in setups.items():
            feats = feature_map(render(bg, pos, objs, side, shift), size, 8)
            dets = []
            if i == 0:
                for p in pos:
                    m = cell_mask(p, side, stride_px, size)
                    dets.append(Observation(mask_to_box(m), m, 1.0, None, origin="prompt"))
            t0 = time.perf_counter()
            result = tracker.step(Frame(f"n{n}", i, i / 25, 0.0, image), feats, dets)
            if i > 0:
                seconds[n] += time.perf_counter() - t0
            tracked[n] = sum(t.mask is not None for t in result.tracks)
    out = {f"{n}_objects_s_per_frame": round(seconds[n] / (n_frames - 1), 4) for n in counts}
    out.update({f"{n}_objects_visible_at_end": tracked[n] for n in counts})
    out["ratio"] = round(seconds[counts[-1]] / seconds[counts[0]], 3)
    return out


def lost_search(n_lost: int = 20, frames: int = 5) -> dict[str, object]:
    grid, channels, size = (56, 100), 128, (480, 854)
    bg, pos, objs, side = synthetic_scene(grid, channels, n_lost, seed=3)
    image = np.zeros((*size, 3), np.uint8)
    config = TrackerConfig().upsample

    def upsample(probs: np.ndarray, crop: np.ndarray) -> np.ndarray:
        return upsample_probs(probs, crop, config)

    out: dict[str, object] = {"lost_tracks": n_lost}
    for name, budget in (("default", PresenceConfig().searches_per_frame), ("all", None)):
        verifier = PresenceVerifier(PresenceConfig(searches_per_frame=budget))
        for i in range(40):  # followed for 40 frames: the memories fill up
            feats = feature_map(render(bg, pos, objs, side, 0), size, 8)
            for tid, (y, x) in enumerate(pos):
                weights = np.zeros(grid)
                weights[y : y + side, x : x + side] = 1.0
                if i == 0:
                    verifier.enrol(tid, feats, weights, i)
                else:
                    verifier.judge(tid, feats, weights, i)
        for tid in range(n_lost):
            verifier.mark_lost(tid, 40)
        empty = feature_map(render(bg, [], objs[:0], side, 0), size, 8)  # nowhere to be seen
        t0 = time.perf_counter()
        for i in range(41, 41 + frames):
            verifier.reacquire(list(range(n_lost)), i, empty, image, upsample, {})
        out[f"{name}_searches_per_frame"] = budget
        out[f"{name}_s_per_frame"] = round((time.perf_counter() - t0) / frames, 4)
    out["memory_cells_per_track"] = len(verifier._memories[0].keys()[1])
    return out


def rss_over_frames(n_frames: int) -> dict[str, object]:
    grid, channels, size = (12, 16), 32, (96, 128)
    stride_px = (size[0] / grid[0], size[1] / grid[1])
    bg, pos, objs, side = synthetic_scene(grid, channels, 3, seed=2)
    side = 3
    objs = objs[:, :side, :side]
    pos = [(1, 1), (5, 6), (8, 2)]
    image = np.zeros((*size, 3), np.uint8)
    tracker = Tracker("rss", TrackerConfig(), build_segmenter("none"), "synthetic")
    samples = []
    t0 = time.perf_counter()
    for i in range(n_frames):
        shift = (i // 10) % 6  # objects drift right and jump back
        feats = feature_map(render(bg, pos, objs, side, shift), size, 8)
        dets = []
        if i == 0:
            for p in pos:
                m = cell_mask(p, side, stride_px, size)
                dets.append(Observation(mask_to_box(m), m, 1.0, None, origin="prompt"))
        tracker.step(Frame("rss", i, i / 25, 0.0, image), feats, dets)
        tracker.pop_events()
        if i % 1000 == 0 or i == n_frames - 1:
            samples.append((i, round(rss_mb(), 1), tracker.propagator.memory_length))
    return {
        "frames": n_frames,
        "rss_mb_by_frame": {str(i): mb for i, mb, _ in samples},
        "memory_frames_by_frame": {str(i): m for i, _, m in samples},
        "rss_growth_after_first_1000_mb": round(samples[-1][1] - samples[1][1], 1)
        if len(samples) > 1
        else 0.0,
        "seconds_per_frame": round((time.perf_counter() - t0) / n_frames, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rss-frames", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "benchmark": "tracker cost vs number of objects; RSS over a long run",
        "data": "synthetic features (DAVIS-sized: 480x854 frame, 56x100x128 grid)",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, shared; torch threads "
        f"{args.threads}; both object counts interleaved in one process",
        "objects_with_tile_skipping": time_objects(args.frames, [1, 20], skip=True),
        "objects_without_tile_skipping": time_objects(args.frames, [1, 20], skip=False),
        "search_for_lost_tracks": lost_search(),
    }
    if args.rss_frames > 0:
        report["rss"] = rss_over_frames(args.rss_frames)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
