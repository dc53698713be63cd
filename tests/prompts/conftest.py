"""Small real components and files for the prompt tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pipeline.masks import box_to_mask, mask_to_box
from pipeline.models.base import MaskProposal, MaskRequest
from pipeline.types import FeatureMap

W, H = 160, 120


class ExclusiveBoxSegmenter:
    """A minimal panoptic segmenter: a box request gets its box, a points request a 9x9 square
    around each positive point; within one `segment` call every pixel goes to at most one object
    (the smallest one covering it), so objects segmented together never overlap."""

    name = "exclusive-box"

    def segment(
        self, image: np.ndarray, features: FeatureMap, requests: Sequence[MaskRequest]
    ) -> list[MaskProposal]:
        h, w = image.shape[:2]
        masks = []
        for r in requests:
            m = np.zeros((h, w), bool)
            if r.box is not None:
                m |= box_to_mask(r.box, h, w)
            if r.points is not None:
                for (x, y), lab in zip(r.points, r.point_labels, strict=True):
                    if lab == 1:
                        m |= box_to_mask((x - 4, y - 4, x + 5, y + 5), h, w)
            masks.append(m)
        order = sorted(range(len(masks)), key=lambda i: masks[i].sum())
        taken = np.zeros((h, w), bool)
        for i in order:
            masks[i] = masks[i] & ~taken
            taken |= masks[i]
        return [MaskProposal(m, 0.9) for m in masks]


class RedDetector:
    """A zero-shot detector for the query "red": boxes of the connected red regions."""

    def detect(
        self, image: np.ndarray, queries: list[str], threshold: float
    ) -> list[tuple[tuple[float, float, float, float], float, str]]:
        out = []
        if "red" not in queries:
            return out
        img = image.astype(int)
        red = (img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 100)
        labels, n = ndimage.label(red)
        for i in range(1, n + 1):
            box = mask_to_box(labels == i)
            score = float((labels == i).sum() / max(1.0, (box[2] - box[0]) * (box[3] - box[1])))
            if score >= threshold:
                out.append((box, score, "red"))
        return out


def blank_features(h: int = H, w: int = W) -> FeatureMap:
    """Features of a flat frame (the segmenter and resolver above do not read them)."""
    grid = np.zeros((h // 8, w // 8, 4), np.float32)
    grid[..., 0] = 1.0
    return FeatureMap(grid, 8, np.array([1, 0, 0, 0], np.float32), (h, w), (h, w), "flat")


def scene() -> np.ndarray:
    """A grey 160x120 frame with a red 30x20 rectangle at (20, 30) and another at (100, 70)."""
    img = np.full((H, W, 3), 90, np.uint8)
    img[30:50, 20:50] = (220, 30, 30)
    img[70:100, 100:140] = (220, 30, 30)
    return img


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """A palette mask (ids 1, 2, 5), a 0/255 mask, a reference image, a MOT det.txt, a JSON
    detections list, in ``tmp_path``."""
    palette = np.zeros((H, W), np.uint8)
    palette[10:30, 10:40] = 1
    palette[50:90, 60:100] = 2
    palette[100:110, 130:150] = 5
    im = Image.fromarray(palette, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9, 200, 200, 0] + [0] * 750)
    im.save(tmp_path / "palette.png")
    binary = np.zeros((H, W), np.uint8)
    binary[20:60, 30:90] = 255
    Image.fromarray(binary, mode="L").save(tmp_path / "binary.png")
    Image.fromarray(scene()).save(tmp_path / "ref.png")
    (tmp_path / "det.txt").write_text(
        "1,-1,10,20,30,40,0.9,-1,-1,-1\n1,-1,100,60,20,30,0.4,-1,-1,-1\n3,-1,5,5,10,10,0.7\n"
    )
    (tmp_path / "det.json").write_text(
        '[{"frame": 0, "box": [1, 2, 30, 40], "score": 0.8, "label": "car"},'
        ' {"frame": 2, "box": [10, 10, 20, 20]}]'
    )
    return {
        "palette": tmp_path / "palette.png",
        "binary": tmp_path / "binary.png",
        "ref": tmp_path / "ref.png",
        "det": tmp_path / "det.txt",
        "detjson": tmp_path / "det.json",
        "dir": tmp_path,
    }
