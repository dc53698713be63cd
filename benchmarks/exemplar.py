"""Exemplar prompt quality: enrol the object of DAVIS-2016 frame 0 (its ground-truth box) and match
it in later frames; prints JSON figures (machine, backbone, resolution, data stated).

    python benchmarks/exemplar.py [--data DAVIS_DIR] [--step 10] [--threshold 0.5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.masks import box_iou, mask_to_box
from pipeline.models.mobilenet import MobileNetV2Backbone
from pipeline.prompts import Exemplar

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-dev"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--step", type=int, default=10, help="match every STEP-th frame after frame 0")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    backbone = MobileNetV2Backbone()
    per_seq, ious, match_ms = {}, [], []
    for seq in (args.data / "sequences.txt").read_text().split():
        frames = sorted((args.data / "JPEGImages/480p" / seq).glob("*.jpg"))
        masks = [args.data / "Annotations/480p" / seq / (f.stem + ".png") for f in frames]
        gt0 = np.asarray(Image.open(masks[0])) > 0
        ref = np.asarray(Image.open(frames[0]).convert("RGB"))
        exemplar = Exemplar.from_reference(ref, mask_to_box(gt0), backbone, name=seq)
        seq_ious = []
        for i in range(args.step, len(frames), args.step):
            gt_box = mask_to_box(np.asarray(Image.open(masks[i])) > 0)
            if gt_box is None:
                continue
            fm = backbone.features([np.asarray(Image.open(frames[i]).convert("RGB"))])[0]
            t0 = time.perf_counter()
            found = exemplar.match(fm, args.threshold, max_matches=1)
            match_ms.append((time.perf_counter() - t0) * 1000)
            seq_ious.append(float(box_iou([found[0][0]], [gt_box])[0, 0]) if found else 0.0)
        per_seq[seq] = round(float(np.mean(seq_ious)), 3)
        ious.extend(seq_ious)
    print(
        json.dumps(
            {
                "benchmark": "exemplar prompt: best match box vs ground-truth box",
                "data": f"DAVIS-2016 dev, {len(per_seq)} sequences, 854x480, frames {args.step}, "
                f"{2 * args.step}, ... matched against frame 0",
                "backbone": f"{backbone.name} stride {backbone.stride}, short side "
                f"{backbone.short_side}",
                "machine": f"{platform.processor() or platform.machine()}, torch threads "
                f"{args.threads}",
                "threshold": args.threshold,
                "frames": len(ious),
                "mean_box_iou": round(float(np.mean(ious)), 3),
                "recall_at_iou_0.5": round(float(np.mean(np.array(ious) > 0.5)), 3),
                "match_ms_median": round(float(np.median(match_ms)), 1),
                "per_sequence_mean_iou": per_seq,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
