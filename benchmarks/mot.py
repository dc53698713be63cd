"""MOT benchmark: dinotrack vs ByteTrack, SORT, OC-SORT, BoT-SORT on the same noisy detections.

Detections are made from the ground truth with a fixed seed (10% dropped, box jitter 5% of the
size, 5% false positives; every score 1.0), so every tracker sees exactly the same input. Prints
one JSON document with the machine, backbone, resolution, data and per-tracker metrics.

    python benchmarks/mot.py [--data /work/shared/data/mot15] [--seq TUD-Campus --seq ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.eval.mot import read_sequence, run_mot  # noqa: E402
from pipeline.eval.noise import NoiseConfig, make_noisy_detections  # noqa: E402
from pipeline.models.config import BackboneConfig, SegmenterConfig  # noqa: E402
from pipeline.models.registry import build_segmenter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mot15")
    parser.add_argument("--seq", action="append", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--short-side", type=int, default=448)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from pipeline.models.mobilenet import MobileNetV2Backbone

    backbone = MobileNetV2Backbone(
        BackboneConfig(name="mobilenetv2-imagenet", short_side=args.short_side, device="cpu")
    )
    segmenter = build_segmenter("none", SegmenterConfig(device="cpu"))
    noise = NoiseConfig(seed=args.seed)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="dinotrack-mot-"))
    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
        },
        "backbone": backbone.name,
        "segmenter": "none",
        "short_side": args.short_side,
        "noise": noise.model_dump(),
        "sequences": [],
    }
    for name in args.seq or ["TUD-Campus", "TUD-Stadtmitte"]:
        seq = read_sequence(args.data / name)
        det = make_noisy_detections(
            seq.gt_path, out_dir / f"{name}.det.txt", seq.size or (640, 480), noise
        )
        t0 = time.perf_counter()
        res = run_mot(args.data / name, det, out_dir / f"{name}.txt", backbone, segmenter)
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        res["resolution"] = list(seq.size) if seq.size else None
        for r in res["results"].values():
            r.pop("path", None)
        report["sequences"].append(res)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
