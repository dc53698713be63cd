"""The long-term set (objects that leave, hide and come back): dinotrack's VOT-LT F-score.

Each sequence of ``--root`` (default ``../shared/data/long-term``) is tracked from its first
ground-truth box at frame 0 (a box prompt, the feature segmenter) and scored by
`pipeline.eval.longterm` (Pr, Re, F, absent frames shown, absences re-acquired). Prints JSON per
sequence and the mean, with seconds per frame and the conditions (machine, load, model, input size).

``--cache DIR`` keeps each sequence's backbone features on disk (``DIR/<backbone>-<short side>/``;
they are deterministic), so that iterating on the tracking logic costs only the tracker's time;
backbone seconds are then the ones measured when the features were first computed.
``--tracker-config FILE`` (YAML/JSON `TrackerConfig` fields) tries other settings; ``--peers FILE``
adds the best classic peer per sequence from ``benchmarks/longterm_peers.py``'s JSON output.

Usage: ``python benchmarks/longterm.py [--sequences a,b] [--max-frames N] [--cache DIR]``.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from pipeline.eval.longterm import dumps, list_sequences, run_longterm, sequence_images
from pipeline.models.config import BackboneConfig
from pipeline.models.registry import build_backbone, build_segmenter
from pipeline.tracking.tracker import TrackerConfig
from pipeline.types import FeatureMap

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "long-term"


class FeatureCache:
    """A sequence's backbone features on disk: one (N, h, w, C) float32 memmap, the global
    vectors, and the seconds each frame took when computed."""

    def __init__(self, folder: Path, backbone, seq: str, n_frames: int) -> None:
        self.backbone = backbone
        self.folder = folder / seq
        self.n = n_frames
        self.grid: np.ndarray | None = None
        self.meta: dict = {}
        meta = self.folder / "meta.json"
        if meta.is_file():
            self.meta = json.loads(meta.read_text())
            if self.meta.get("complete") and self.meta["frames"] >= n_frames:
                self.grid = np.load(self.folder / "grid.npy", mmap_mode="r")
                self.globals = np.load(self.folder / "global.npy")

    def __call__(self, i: int, image: np.ndarray) -> FeatureMap:
        if self.grid is not None:
            m = self.meta
            return FeatureMap(
                np.array(self.grid[i]), m["stride"], self.globals[i], tuple(m["input_size"]),
                tuple(m["image_size"]), m["backbone"],
            )  # fmt: skip
        t0 = time.perf_counter()
        f = self.backbone.features([image])[0]
        seconds = time.perf_counter() - t0
        if i == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._grid = np.lib.format.open_memmap(
                self.folder / "grid.npy", "w+", np.float32, (self.n, *f.grid.shape)
            )
            self._globals = np.zeros((self.n, f.global_vec.shape[0]), np.float32)
            self._seconds: list[float] = []
            self.meta = {
                "stride": f.stride, "input_size": list(f.input_size),
                "image_size": list(f.image_size), "backbone": f.backbone, "frames": self.n,
            }  # fmt: skip
        self._grid[i] = f.grid
        self._globals[i] = f.global_vec
        self._seconds.append(seconds)
        if i == self.n - 1:
            self._grid.flush()
            np.save(self.folder / "global.npy", self._globals)
            self.meta.update(complete=True, backbone_s=float(np.mean(self._seconds[1:] or [0])))
            (self.folder / "meta.json").write_text(json.dumps(self.meta))
        return f


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--sequences", default=None, help="comma-separated (default: all)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--backbone", default="mobilenetv2-imagenet")
    parser.add_argument("--short-side", type=int, default=448)
    parser.add_argument("--cache", type=Path, default=None, help="folder for cached features")
    parser.add_argument("--tracker-config", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="folder for per-frame reports")
    parser.add_argument("--peers", type=Path, default=None, help="longterm_peers.py JSON output")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    names = args.sequences.split(",") if args.sequences else list_sequences(args.root)
    cfg = TrackerConfig()
    if args.tracker_config is not None:
        cfg = TrackerConfig.model_validate(yaml.safe_load(args.tracker_config.read_text()) or {})
    backbone = build_backbone(
        BackboneConfig(name=args.backbone, short_side=args.short_side, device="cpu")
    )
    segmenter = build_segmenter("none")
    caches: dict[str, FeatureCache] = {}

    def features_for(seq: str) -> FeatureCache | None:
        if args.cache is None:
            return None
        n = len(sequence_images(args.root / seq)[: args.max_frames])
        folder = args.cache / f"{backbone.name}-{args.short_side}"
        caches[seq] = FeatureCache(folder, backbone, seq, n)
        return caches[seq]

    result = run_longterm(
        args.root, names, backbone, segmenter, cfg, args.out, features_for, args.max_frames
    )
    for seq, cache in caches.items():  # cached features: the backbone time measured back then
        s = result["sequences"][seq]
        s["backbone_s"] = cache.meta.get("backbone_s", s["backbone_s"])
        s["seconds_per_frame"] = s["backbone_s"] + s["tracker_s"]
    if caches:
        times = [s["seconds_per_frame"] for s in result["sequences"].values()]
        result["mean"]["seconds_per_frame"] = float(np.mean(times))
    if args.peers is not None:
        best = json.loads(args.peers.read_text())["summary"]["best_per_sequence"]
        for seq, s in result["sequences"].items():
            if seq in best:
                # the peers' JSON gives F in percent; kept as a fraction here, as dumps expects
                s["best_peer"] = {"peer": best[seq]["peer"], "F": best[seq]["F"] / 100}
                s["above_best_peer"] = s["F"] > s["best_peer"]["F"]
    result["setup"] = {
        "data": str(args.root),
        "model": f"{backbone.name}, input short side {args.short_side}, segmenter none",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, shared; torch threads "
        f"{args.threads}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "max_frames": args.max_frames,
        "features": "cached on disk" if args.cache else "computed",
    }
    print(dumps(result))


if __name__ == "__main__":
    main()
