"""Prompts on real data: an exemplar enrolled on DAVIS 'bear' frame 0 finds the bear in frame 30
with the real ImageNet MobileNetV2 backbone; MOTChallenge files parse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.masks import box_iou, mask_to_box
from pipeline.prompts import DetectionsPrompt, ExemplarPrompt, MaskPrompt, validate_prompts


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_exemplar_finds_the_bear_thirty_frames_later(shared_data: Path) -> None:
    mobilenet = pytest.importorskip("pipeline.models.mobilenet")
    root = shared_data / "davis2016-dev"
    gt0 = np.asarray(Image.open(root / "Annotations/480p/bear/00000.png")) > 0
    gt30 = np.asarray(Image.open(root / "Annotations/480p/bear/00030.png")) > 0
    ref = root / "JPEGImages/480p/bear/00000.jpg"
    prompt = ExemplarPrompt(image=str(ref), box=mask_to_box(gt0), frame=30)
    assert validate_prompts([prompt], 854, 480)[1] == []
    backbone = mobilenet.MobileNetV2Backbone()
    exemplar = prompt.enroll(backbone)
    assert np.linalg.norm(exemplar.prototype) == pytest.approx(1.0, abs=1e-5)
    fm = backbone.features([_rgb(root / "JPEGImages/480p/bear/00030.jpg")])[0]
    matches = exemplar.match(fm, prompt.threshold)
    assert matches, f"no match; best similarity {exemplar.best_similarity(fm):.2f}"
    best_box, score = matches[0]
    assert score >= prompt.threshold
    assert box_iou([best_box], [mask_to_box(gt30)])[0, 0] > 0.5


def test_mot_ground_truth_parses(shared_data: Path) -> None:
    gt = shared_data / "mot15/TUD-Campus/gt/gt.txt"
    dets = DetectionsPrompt.from_file(gt)
    first = dets.for_frame(0)
    assert first[0] == ((399.0, 182.0, 520.0, 411.0), 1.0, None)  # 1,1,399,182,121,229,1,...
    rows = [ln for ln in gt.read_text().splitlines() if ln.strip()]
    assert sum(len(v) for v in dets.detections.values()) == len(rows)
    assert max(dets.detections) == max(int(r.split(",")[0]) for r in rows) - 1
    assert validate_prompts([dets], 640, 480)[1] == []


def test_palette_mask_of_many_people(shared_data: Path) -> None:
    path = shared_data / "multi-object-prompts/masks/1007_YCTBBdbKSSg/00000693.png"
    prompt = MaskPrompt.from_file(path, ids=[1, 3])
    assert prompt.size == (1080, 1920)
    assert len(MaskPrompt.from_file(path).object_ids()) == 43
    masks = prompt.object_masks()
    assert sorted(masks) == [1, 3] and int(masks[1].sum()) == 56994 and int(masks[3].sum()) == 41571
    assert validate_prompts([prompt], 1920, 1080)[1] == []
