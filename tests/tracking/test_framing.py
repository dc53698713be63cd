"""A box prompt's framing (`pipeline.tracking.framing`): a track whose mask covers part of the
boxed object publishes boxes in the prompt's framing as the object moves."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.masks import box_iou
from pipeline.models.config import BackboneConfig
from pipeline.models.mobilenet import MobileNetV2Backbone
from pipeline.models.registry import build_segmenter
from pipeline.tracking.config import TrackerConfig
from pipeline.tracking.framing import Framing
from pipeline.tracking.tracker import Tracker
from pipeline.types import Frame, Observation


def test_boxes_grow_to_the_prompt_shape_on_the_side_the_prompt_reached() -> None:
    framing = Framing.of((10, 20, 30, 80), (10, 20, 30, 40))  # mask: the top third
    assert framing.aspect == pytest.approx(1 / 3) and framing.top_share == 0.0
    assert framing.apply((10, 20, 30, 40), (100, 100)) == pytest.approx((10, 20, 30, 80))
    # the part moved and doubled in size: so does the box, clipped to the image
    assert framing.apply((50, 10, 90, 50), (100, 100)) == pytest.approx((50, 10, 90, 100))
    # a mask already of the prompt's shape (the whole object found again): its own box
    assert framing.apply((10, 20, 30, 80), (100, 100)) == pytest.approx((10, 20, 30, 80))
    # a mask that lost its sides: widened evenly (the prompt reached past neither side)
    assert framing.apply((14, 20, 26, 80), (100, 100)) == pytest.approx((10, 20, 30, 80))


def test_box_prompt_on_part_of_an_object_publishes_the_whole_box() -> None:
    h, w, side = 160, 224, 48
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 80, size=(h, w, 3)).astype(np.uint8)
    top = (np.array([200, 40, 40]) + rng.integers(0, 40, size=(side // 3, side, 3))).astype(
        np.uint8
    )
    rest = (np.array([40, 40, 200]) + rng.integers(0, 40, size=(side - side // 3, side, 3))).astype(
        np.uint8
    )
    backbone = MobileNetV2Backbone(BackboneConfig(name="mobilenetv2-imagenet", short_side=160))
    tracker = Tracker("t", TrackerConfig(), build_segmenter("none"), backbone.name)
    for i in range(6):
        x, y = 30 + 6 * i, 50
        img = bg.copy()
        img[y : y + side // 3, x : x + side] = top
        img[y + side // 3 : y + side, x : x + side] = rest
        truth = np.array([[x, y, x + side, y + side]], float)
        prompt = []
        if i == 0:  # the mask made from the box covers the red top third only
            mask = np.zeros((h, w), bool)
            mask[y : y + side // 3, x : x + side] = True
            box = (x, y, x + side, y + side // 3)
            prompt = [Observation(box, mask, 1.0, "o", "prompt", framing=tuple(truth[0]))]
        result = tracker.step(Frame("t", i, i / 25, 0.0, img), backbone.features([img])[0], prompt)
        track = result.track(1)
        assert track.box is not None
        assert box_iou(np.array([track.box]), truth)[0, 0] > 0.75, f"frame {i}: {track.box}"


def test_growth_goes_where_the_object_continues_past_its_mask() -> None:
    # a 6x10-cell object (8-pixel cells) whose mask kept its top 6 rows; the prompt's share
    # (its grid rounding) would put all the missing height above it
    framing = Framing(aspect=0.6, left_share=0.5, top_share=1.0)
    truth, box = (48, 32, 96, 112), (48, 32, 96, 80)
    prob = np.zeros((20, 20), np.float32)
    prob[4:14, 6:12] = 0.3  # the lost part still looks somewhat like the object

    def look(cells: np.ndarray) -> np.ndarray:
        return prob[cells]

    share = framing.lean(box, (20, 20), (160, 160), look)
    # below: 4 rows x 6 cells x 0.3 of object mass; above: none; the prompt's share weighs 1 cell
    assert share == pytest.approx(1.0 / (4 * 6 * 0.3 + 1.0))
    grown = framing.apply(box, (160, 160), share)
    assert box_iou(np.array([grown]), np.array([truth], float))[0, 0] > 0.9
    assert box_iou(np.array([framing.apply(box, (160, 160))]), np.array([truth], float))[0, 0] < 0.6
    # nothing beyond either side: the prompt's share stands; a box of the prompt's shape: None
    assert framing.lean(box, (20, 20), (160, 160), lambda c: np.zeros(int(c.sum()))) == 1.0
    assert framing.lean(truth, (20, 20), (160, 160), look) is None
