"""Exports round-trip: DAVIS palette PNGs, MOTChallenge txt, COCO JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.eval.metrics import load_mot
from pipeline.masks import mask_to_box, rle_decode, rle_encode
from pipeline.outputs.exports import export_coco, export_davis, export_mot
from pipeline.types import FrameResult, Track, TrackState

H, W = 48, 64


def _results() -> tuple[list[FrameResult], dict[tuple[int, int], np.ndarray]]:
    """Three frames: a masked "dog" (id 1) moving right, a box-only "cat" (id 3) in frames 1-2,
    and a lost track (id 2) without box that no export writes."""
    results, masks = [], {}
    for f in range(3):
        dog = np.zeros((H, W), bool)
        dog[10:30, 5 + 4 * f : 20 + 4 * f] = True
        masks[(f, 1)] = dog
        tracks = [
            Track(1, "dog", TrackState.ACTIVE, 0.9, mask_to_box(dog), rle_encode(dog)),
            Track(2, None, TrackState.LOST, 0.0, None, None),
        ]
        if f >= 1:
            tracks.append(Track(3, "cat", TrackState.ACTIVE, 0.5, (40.0, 30.0, 50.0, 45.0)))
            cat = np.zeros((H, W), bool)
            cat[30:45, 40:50] = True
            masks[(f, 3)] = cat
        results.append(FrameResult("cam", f, f / 25, 0.0, W, H, "test", tracks))
    return results, masks


def test_davis_round_trip(tmp_path: Path) -> None:
    results, masks = _results()
    names = {0: "00010.jpg", 1: "00011.jpg", 2: "00012.jpg"}
    paths = export_davis(results, tmp_path, frame_names=names)
    assert [p.name for p in paths] == ["00010.png", "00011.png", "00012.png"]
    for f, path in enumerate(paths):
        image = Image.open(path)
        assert image.mode == "P"
        pixels = np.array(image)
        assert set(np.unique(pixels)) == ({0, 1, 3} if f else {0, 1})
        np.testing.assert_array_equal(pixels == 1, masks[(f, 1)])
        if f:
            np.testing.assert_array_equal(pixels == 3, masks[(f, 3)])
    assert image.getpalette()[3:6] == [128, 0, 0]  # DAVIS colour of object 1
    default = export_davis(results[:1], tmp_path / "plain")
    assert default[0].name == "00000.png"


def test_davis_rejects_ids_beyond_a_byte(tmp_path: Path) -> None:
    big = FrameResult(
        "cam", 0, 0.0, 0.0, W, H, "t", [Track(300, None, TrackState.ACTIVE, 1.0, (0, 0, 5, 5))]
    )
    with pytest.raises(ValueError, match="track id 300"):
        export_davis([big], tmp_path)


def test_mot_round_trip(tmp_path: Path) -> None:
    results, _ = _results()
    path = export_mot(reversed(results), tmp_path / "out" / "seq.txt")
    rows = load_mot(path)
    assert rows[:, :2].tolist() == [[1, 1], [2, 1], [2, 3], [3, 1], [3, 3]]
    for row in rows:
        result = results[int(row[0]) - 1]
        x0, y0, x1, y1 = result.track(int(row[1])).box
        np.testing.assert_allclose(row[2:6], [x0, y0, x1 - x0, y1 - y0], atol=0.01)
    assert rows[1, 6] == pytest.approx(0.9) and rows[2, 6] == pytest.approx(0.5)
    assert path.read_text().splitlines()[0].endswith(",-1,-1,-1")


def test_coco_round_trip(tmp_path: Path) -> None:
    results, masks = _results()
    doc = json.loads(export_coco(results, tmp_path / "coco.json").read_text())
    assert [i["id"] for i in doc["images"]] == [1, 2, 3]
    assert {c["name"]: c["id"] for c in doc["categories"]} == {"dog": 1, "cat": 2}
    assert len(doc["annotations"]) == 5
    assert len({a["id"] for a in doc["annotations"]}) == 5
    for ann in doc["annotations"]:
        f = ann["image_id"] - 1
        mask = rle_decode(ann["segmentation"])
        np.testing.assert_array_equal(mask, masks[(f, ann["track_id"])])
        assert ann["area"] == float(mask.sum())
        x0, y0, x1, y1 = results[f].track(ann["track_id"]).box
        assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0]
        assert ann["category_id"] == (1 if ann["track_id"] == 1 else 2)
