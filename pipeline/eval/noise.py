"""Seeded noisy detections made from MOT ground truth, to compare trackers on equal input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic

from pipeline.eval.metrics import load_mot


class NoiseConfig(pydantic.BaseModel):
    """How ground-truth boxes are degraded into detections."""

    model_config = pydantic.ConfigDict(extra="forbid")

    drop_rate: float = pydantic.Field(0.10, ge=0.0, le=1.0)
    """Fraction of ground-truth boxes dropped (missed detections)."""
    jitter: float = pydantic.Field(0.05, ge=0.0)
    """Standard deviation of box noise, as a fraction of the box width (x, w) or height (y, h)."""
    fp_rate: float = pydantic.Field(0.05, ge=0.0, le=1.0)
    """False positives per ground-truth box, placed uniformly in the image with a real box size."""
    seed: int = 0
    """Seed of the random generator: same seed and gt, same detections."""


def noisy_detections(
    gt: np.ndarray, image_size: tuple[int, int], config: NoiseConfig | None = None
) -> np.ndarray:
    """Detections from ground truth, as MOT det rows ``frame, -1, x, y, w, h, 1, -1, -1, -1``.

    Ground-truth rows with conf 0 are not used. Every detection scores 1.0: the noise is in the
    boxes, not in the scores, so no tracker gains from score thresholds.

    Args:
        gt: Ground-truth rows (frame, id, x, y, w, h, conf, ...).
        image_size: (width, height) of the frames; false positives are placed inside it.
        config: Noise settings.

    Returns:
        (N, 10) float array sorted by frame.
    """
    cfg = config or NoiseConfig()
    width, height = image_size
    rng = np.random.default_rng(cfg.seed)
    gt = np.asarray(gt, dtype=np.float64)
    gt = gt[gt[:, 6] != 0] if gt.shape[1] > 6 else gt
    boxes = gt[:, 2:6]
    keep = rng.random(len(gt)) >= cfg.drop_rate
    kept = boxes[keep]
    scale = kept[:, [2, 3, 2, 3]]
    noisy = kept + rng.normal(0.0, cfg.jitter, size=kept.shape) * scale
    noisy[:, 2:4] = np.maximum(noisy[:, 2:4], 1.0)
    frames = gt[keep, 0]
    rows = [np.column_stack([frames, noisy])]
    if len(gt) and cfg.fp_rate > 0:
        frame_ids, counts = np.unique(gt[:, 0], return_counts=True)
        for f, n in zip(frame_ids.astype(int), counts, strict=True):
            k = int(rng.binomial(n, cfg.fp_rate))
            if k == 0:
                continue
            size = boxes[rng.integers(0, len(boxes), size=k), 2:4]
            x = rng.uniform(0, np.maximum(width - size[:, 0], 1.0))
            y = rng.uniform(0, np.maximum(height - size[:, 1], 1.0))
            rows.append(np.column_stack([np.full(k, f), x, y, size]))
    det = np.concatenate(rows, axis=0)
    det = det[np.argsort(det[:, 0], kind="stable")]
    n = len(det)
    return np.column_stack(
        [det[:, 0], -np.ones(n), det[:, 1:5], np.ones(n), -np.ones(n), -np.ones(n), -np.ones(n)]
    )


def write_mot(rows: np.ndarray, path: str | Path) -> Path:
    """Write MOT rows as text: integers for frame and id, two decimals for the rest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in np.asarray(rows, dtype=np.float64):
        rest = ",".join(f"{v:.2f}" if v != int(v) else str(int(v)) for v in r[2:])
        lines.append(f"{int(r[0])},{int(r[1])},{rest}")
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def make_noisy_detections(
    gt_path: str | Path,
    out_path: str | Path,
    image_size: tuple[int, int],
    config: NoiseConfig | None = None,
) -> Path:
    """Read ``gt.txt``, write noisy detections as a MOT ``det.txt`` at ``out_path``."""
    return write_mot(noisy_detections(load_mot(gt_path), image_size, config), out_path)
