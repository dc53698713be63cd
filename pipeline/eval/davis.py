"""DAVIS semi-supervised video object segmentation evaluation: J (region IoU) and F (boundary
F-measure), as defined by the DAVIS benchmark (Perazzi et al., 2016; Pont-Tuset et al., 2017).

* J: intersection over union of the predicted and true masks (1 when both are empty).
* F: boundary maps of both masks (``seg2bmap``), each matched to the other dilated by a disk of
  radius ``ceil(0.008 * image diagonal)`` pixels; precision, recall and their harmonic mean.
* The first frame (given as the prompt) and the last frame are not scored; a sequence's score is
  the mean over its frames and objects, the dataset's the mean over sequences.

`run_davis` runs sequences in the DAVIS layout (``JPEGImages/480p/<seq>/*.jpg`` and
``Annotations/480p/<seq>/*.png``) through the `Tracker`, the first frame's mask being the prompt.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from pipeline.masks import mask_iou
from pipeline.models.base import Backbone, Segmenter
from pipeline.outputs.exports import davis_palette
from pipeline.tracking.config import TrackerConfig
from pipeline.tracking.tracker import Tracker
from pipeline.types import Frame, Observation

BOUND_TH = 0.008


def j_measure(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region similarity J: IoU of two (H, W) boolean masks (1.0 when both are empty)."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    return mask_iou(pred.astype(bool), gt.astype(bool))


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask, as in the DAVIS toolkit: a pixel is on the
    boundary when it differs from its east, south or south-east neighbour."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) uint8 disk structuring element (x^2 + y^2 <= r^2), as skimage's ``disk``."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return ((x * x + y * y) <= radius * radius).astype(np.uint8)


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of two (H, W) boolean masks (DAVIS definition).

    Args:
        pred: Predicted mask.
        gt: True mask.
        bound_th: Tolerance: a fraction of the image diagonal (< 1) or pixels (>= 1).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    bound_pix = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*pred.shape))
    fg_b = seg2bmap(pred)
    gt_b = seg2bmap(gt)
    kernel = disk(int(bound_pix))
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0 or n_gt == 0:
        return 0.0  # precision or recall is 0
    precision = float((fg_b & gt_dil).sum()) / n_fg
    recall = float((gt_b & fg_dil).sum()) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def score_sequence(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict[str, float]:
    """J, F and J&F of one sequence from (H, W) integer label maps (0 = background, k = object k):
    every object of the first true frame, every frame but the first and the last."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predicted frames for {len(gts)} annotated frames")
    objects = [int(v) for v in np.unique(gts[0]) if v != 0]
    js, fs = [], []
    for obj in objects:
        for pred, gt in zip(preds[1:-1], gts[1:-1], strict=True):
            js.append(j_measure(pred == obj, gt == obj))
            fs.append(f_measure(pred == obj, gt == obj))
    j = float(np.mean(js)) if js else float("nan")
    f = float(np.mean(fs)) if fs else float("nan")
    return {"J": j, "F": f, "J&F": (j + f) / 2, "frames": len(preds), "objects": len(objects)}


def read_labels(path: Path) -> np.ndarray:
    """A DAVIS annotation as an (H, W) label map: palette PNGs keep their indices; 0/255 masks
    (DAVIS-2016) become 0/1."""
    arr = np.array(Image.open(path))
    if arr.ndim == 3:
        arr = arr[..., 0]
    values = np.unique(arr)
    if len(values) <= 2 and values.max(initial=0) == 255:
        return (arr > 0).astype(np.uint8)
    return arr.astype(np.uint8)


def write_labels(path: Path, labels: np.ndarray) -> None:
    """Save an (H, W) label map as a palette PNG."""
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette(davis_palette())
    img.save(path)


def sequence_frames(root: Path, seq: str) -> tuple[list[Path], list[Path]]:
    """The JPEG frames and annotation PNGs of one sequence (same stems, sorted)."""
    img_dir = root / "JPEGImages" / "480p" / seq
    ann_dir = root / "Annotations" / "480p" / seq
    if not img_dir.is_dir() or not ann_dir.is_dir():
        raise FileNotFoundError(
            f"DAVIS sequence {seq!r} not found: expected {img_dir} and {ann_dir}; check the root "
            "folder and the sequence names"
        )
    images = sorted(img_dir.glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no .jpg frames in {img_dir}")
    anns = [ann_dir / f"{p.stem}.png" for p in images]
    if not anns[0].is_file():
        raise FileNotFoundError(f"first-frame annotation {anns[0]} is missing: it is the prompt")
    return images, anns


def track_sequence(
    images: Sequence[Path],
    first_labels: np.ndarray,
    backbone: Backbone,
    segmenter: Segmenter,
    tracker_config: TrackerConfig,
    source_id: str = "davis",
    progress: Callable[[int], None] | None = None,
) -> tuple[list[np.ndarray], dict[str, float]]:
    """Run the tracker over frames with the first frame's label map as prompt.

    Returns:
        (H, W) uint8 predicted label maps (object values as in ``first_labels``) for every frame,
        and timings: seconds per frame in the backbone and in the tracker, and the tracker's CPU
        seconds per frame in this thread (a figure that a busy machine inflates less).
        ``progress`` is called with the number of frames done after each frame.
    """
    objects = [int(v) for v in np.unique(first_labels) if v != 0]
    tracker = Tracker(source_id, tracker_config, segmenter, backbone.name)
    track_to_obj: dict[int, int] = {}
    preds: list[np.ndarray] = []
    t_backbone = t_tracker = cpu_tracker = 0.0
    for i, path in enumerate(images):
        image = np.array(Image.open(path).convert("RGB"))
        t0 = time.perf_counter()
        features = backbone.features([image])[0]
        t1, c1 = time.perf_counter(), time.thread_time()
        frame = Frame(source_id, i, float(i), time.time(), image)
        detections: list[Observation] = []
        if i == 0:
            for obj in objects:
                mask = first_labels == obj
                ys, xs = np.nonzero(mask)
                box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
                detections.append(Observation(box, mask, 1.0, str(obj), origin="prompt"))
        result = tracker.step(frame, features, detections)
        t2, c2 = time.perf_counter(), time.thread_time()
        if i == 0:
            for t in result.tracks:
                track_to_obj[t.id] = int(t.label)
        else:
            t_backbone += t1 - t0
            t_tracker += t2 - t1
            cpu_tracker += c2 - c1
        labels = np.zeros(image.shape[:2], np.uint8)
        for t in result.tracks:
            if t.mask is not None and t.id in track_to_obj:
                labels[t.mask_array()] = track_to_obj[t.id]
        preds.append(labels)
        if progress is not None:
            progress(i + 1)
    n = max(1, len(images) - 1)
    return preds, {
        "backbone_s": t_backbone / n,
        "tracker_s": t_tracker / n,
        "tracker_cpu_s": cpu_tracker / n,
    }


def run_davis(
    root: Path,
    sequences: Sequence[str],
    backbone: Backbone,
    segmenter: Segmenter,
    tracker_config: TrackerConfig,
    out_dir: Path | None = None,
    max_frames: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    sequence_done: Callable[[str, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate the tracker on DAVIS sequences.

    Args:
        root: DAVIS root (holding ``JPEGImages/480p`` and ``Annotations/480p``).
        sequences: Sequence names.
        backbone: Feature backbone.
        segmenter: Segmenter given to the tracker (``none`` for propagation only).
        tracker_config: Tracker settings.
        out_dir: When given, predicted masks go to ``out_dir/<seq>/<frame>.png`` (palette PNG).
        max_frames: Only the first this many frames of each sequence (None: all).
        progress: Called with (sequence, frames done, frames) after each frame.
        sequence_done: Called with (sequence, its scores) when a sequence is scored.

    Returns:
        ``{"sequences": {seq: {J, F, J&F, frames, objects, backbone_s, tracker_s}}, "mean": {J, F,
        J&F, backbone_s, tracker_s, fps}}``; times are seconds per frame (first frame excluded).
    """
    root = Path(root)
    if not sequences:
        raise ValueError("no DAVIS sequences given: list at least one sequence name")
    if max_frames is not None and max_frames < 3:
        raise ValueError(f"max_frames={max_frames} leaves no scored frame: give 3 or more, or None")
    per_seq: dict[str, dict[str, float]] = {}
    for seq in sequences:
        images, anns = sequence_frames(root, seq)
        if max_frames is not None:
            images, anns = images[:max_frames], anns[:max_frames]
        gts = [read_labels(p) for p in anns]
        on_frame = None if progress is None else _bind(progress, seq, len(images))
        preds, times = track_sequence(
            images, gts[0], backbone, segmenter, tracker_config, seq, progress=on_frame
        )
        per_seq[seq] = {**score_sequence(preds, gts), **times}
        if sequence_done is not None:
            sequence_done(seq, per_seq[seq])
        if out_dir is not None:
            seq_dir = Path(out_dir) / seq
            seq_dir.mkdir(parents=True, exist_ok=True)
            for path, pred in zip(images, preds, strict=True):
                write_labels(seq_dir / f"{path.stem}.png", pred)
    mean = {
        k: float(np.mean([s[k] for s in per_seq.values()]))
        for k in ("J", "F", "J&F", "backbone_s", "tracker_s")
    }
    mean["fps"] = 1.0 / max(mean["backbone_s"] + mean["tracker_s"], 1e-9)
    return {"sequences": per_seq, "mean": mean}


def _bind(progress: Callable[[str, int, int], None], seq: str, total: int) -> Callable[[int], None]:
    return lambda done: progress(seq, done, total)


def read_sequence_list(path: Path) -> list[str]:
    """Sequence names from a text file, one per line (blank lines and # comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sequence list {path} not found: give a text file of names")
    names = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    return [n for n in names if n]


def dumps(result: dict[str, Any]) -> str:
    """The result as indented JSON with rounded figures."""

    def rnd(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, dict):
            return {k: rnd(x) for k, x in v.items()}
        return v

    return json.dumps(rnd(result), indent=2)
