"""Resolution of prompts into observations: one segmenter call per frame, masks without a segmenter,
detections, text, exemplars, and which prompts act on which frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.masks import box_to_mask, mask_iou
from pipeline.prompts import (
    BoxPrompt,
    DetectionsPrompt,
    Exemplar,
    ExemplarPrompt,
    MaskPrompt,
    PointsPrompt,
    PromptError,
    ScribblePrompt,
    TextPrompt,
    resolve_prompt,
    resolve_prompts,
    validate_prompts,
)
from tests.prompts.conftest import ExclusiveBoxSegmenter, H, RedDetector, W, blank_features, scene


def test_all_requests_of_a_frame_go_to_one_segment_call() -> None:
    image, fm, seg = scene(), blank_features(), ExclusiveBoxSegmenter()
    big, small = BoxPrompt(box=(10, 10, 90, 90), label="big"), BoxPrompt(box=(40, 40, 60, 60))
    points = PointsPrompt(points=[(120, 20), (150, 20)], labels=[1, 0])
    scribble = ScribblePrompt(polyline=[(120, 100), (140, 100)], spacing=10)
    obs = resolve_prompts([big, small, points, scribble], image, fm, seg)
    assert [o.label for o in obs] == ["big", None, None, None]
    assert all(o.origin == "prompt" and o.score == pytest.approx(0.9) for o in obs)
    # one call: the segmenter shares the overlap out (separate calls would give overlapping masks)
    ring = box_to_mask(big.box, H, W) & ~box_to_mask(small.box, H, W)
    np.testing.assert_array_equal(obs[0].mask, ring)
    np.testing.assert_array_equal(obs[1].mask, box_to_mask(small.box, H, W))
    assert obs[0].box == (10.0, 10.0, 90.0, 90.0) and obs[1].box == (40.0, 40.0, 60.0, 60.0)
    assert obs[2].box == (116.0, 16.0, 125.0, 25.0)  # only the positive point
    assert obs[3].box == (116.0, 96.0, 145.0, 105.0)  # 3 points sampled along the stroke
    separate = [resolve_prompt(p, image, fm, seg)[0] for p in (big, small)]
    assert mask_iou(separate[0].mask, separate[1].mask) > 0


def test_mask_prompt_needs_no_segmenter(files: dict[str, Path]) -> None:
    prompt = MaskPrompt.from_file(files["palette"], ids=[2, 5], label="person")
    obs = resolve_prompts([prompt], scene(), blank_features(), ExclusiveBoxSegmenter())
    assert [o.box for o in obs] == [(60.0, 50.0, 100.0, 90.0), (130.0, 100.0, 150.0, 110.0)]
    assert [int(o.mask.sum()) for o in obs] == [1600, 200]
    assert all(o.origin == "prompt" and o.label == "person" and o.score == 1.0 for o in obs)


def test_detections_are_observations_not_prompts(files: dict[str, Path]) -> None:
    dets = DetectionsPrompt.from_file(files["det"])
    dets.detections[0].append(((150.0, 100.0, 200.0, 150.0), 1.5, "edge"))  # half outside
    obs = resolve_prompts([dets], scene(), blank_features(), ExclusiveBoxSegmenter(), frame_index=0)
    assert [o.box for o in obs] == [
        (10.0, 20.0, 40.0, 60.0),
        (100.0, 60.0, 120.0, 90.0),
        (150.0, 100.0, 160.0, 120.0),
    ]
    assert [o.score for o in obs] == [0.9, 0.4, 1.0]  # detector scores, clipped to [0, 1]
    assert [o.label for o in obs] == [None, None, "edge"]
    assert not any(o.origin == "prompt" for o in obs)
    later = resolve_prompts(
        [dets], scene(), blank_features(), ExclusiveBoxSegmenter(), frame_index=2
    )
    assert [o.box for o in later] == [(5.0, 5.0, 15.0, 15.0)]


def test_text_prompt_goes_through_the_detector_then_the_segmenter() -> None:
    prompt = TextPrompt(text="red, blue", threshold=0.5, redetect_every=5)
    seg, fm = ExclusiveBoxSegmenter(), blank_features()
    obs = resolve_prompts([prompt], scene(), fm, seg, RedDetector(), frame_index=0)
    assert sorted(o.box for o in obs) == [(20.0, 30.0, 50.0, 50.0), (100.0, 70.0, 140.0, 100.0)]
    assert all(o.label == "red" and o.origin == "prompt" and o.score == 1.0 for o in obs)
    redetected = resolve_prompts([prompt], scene(), fm, seg, RedDetector(), frame_index=10)
    assert len(redetected) == 2 and not any(o.origin == "prompt" for o in redetected)
    assert resolve_prompts([prompt], scene(), fm, seg, RedDetector(), frame_index=7) == []
    with pytest.raises(PromptError, match=r"^prompt 0 \(text 'red, blue'\): a text prompt needs"):
        resolve_prompts([prompt], scene(), fm, seg)


def test_prompts_act_on_their_own_frame_only() -> None:
    prompts = [BoxPrompt(box=(0, 0, 10, 10), frame=3), PointsPrompt(points=[(50, 50)], frame=4)]
    args = (scene(), blank_features(), ExclusiveBoxSegmenter())
    assert resolve_prompts(prompts, *args, frame_index=0) == []
    assert [o.box for o in resolve_prompts(prompts, *args, frame_index=3)] == [(0, 0, 10, 10)]
    assert [o.box for o in resolve_prompts(prompts, *args, frame_index=4)] == [(46, 46, 55, 55)]
    assert len(resolve_prompts(prompts, *args)) == 2  # no frame_index: every prompt applies


def one_hot_features(cells: np.ndarray) -> object:
    """Features whose channel is the integer in ``cells`` (h, w): a cell matches its own kind."""
    from pipeline.types import FeatureMap

    h, w = cells.shape
    grid = np.eye(4, dtype=np.float32)[cells]
    return FeatureMap(grid, 8, np.ones(4, np.float32) / 2, (h * 8, w * 8), (H, W), "one-hot")


def test_exemplar_matches_become_box_observations() -> None:
    cells = np.zeros((15, 20), int)
    cells[2:5, 3:7] = 1  # the object, 24..56 x 16..40 in a 160x120 frame
    cells[9:13, 12:18] = 2  # something else
    fm = one_hot_features(cells)
    ex = Exemplar(
        prototype=np.eye(4, dtype=np.float32)[1],
        backbone="one-hot",
        background=np.eye(4, dtype=np.float32)[[0, 2]],
        name="ref.jpg",
    )
    (box, score), *rest = ex.match(fm, 0.5)
    assert rest == [] and score == pytest.approx(1.0)
    assert box == pytest.approx((24, 16, 56, 40), abs=6)
    prompt = ExemplarPrompt(image="ref.jpg", box=(0, 0, 1, 1), exemplar=ex, label="cup")
    (obs,) = resolve_prompts([prompt], scene(), fm, ExclusiveBoxSegmenter())
    assert obs.origin == "prompt" and obs.label == "cup" and obs.score == pytest.approx(1.0)
    assert obs.box == pytest.approx(box)
    nothing = one_hot_features(np.where(cells == 1, 3, cells))
    with pytest.raises(PromptError) as info:
        resolve_prompts(
            [BoxPrompt(box=(0, 0, 5, 5)), prompt],
            scene(),
            nothing,
            ExclusiveBoxSegmenter(),
            frame_index=0,
        )
    assert str(info.value) == (
        "prompt 1 (exemplar 'ref.jpg'): matched nothing in frame 0 (best similarity 0.00 < 0.5) — "
        "lower --exemplar-threshold or choose a clearer reference"
    )
    prompt.redetect_every = 2
    later = resolve_prompts([prompt], scene(), nothing, ExclusiveBoxSegmenter(), frame_index=2)
    assert later == []  # a re-detection that finds nothing is no error
    wrong = one_hot_features(cells)
    object.__setattr__(wrong, "backbone", "other")
    with pytest.raises(PromptError, match="enrolled with backbone 'one-hot' but the frames come"):
        resolve_prompts([prompt], scene(), wrong, ExclusiveBoxSegmenter())


def test_feature_segmenter_segments_a_box_prompt() -> None:
    """With the real feature-only segmenter and real MobileNetV2 features of a textured square."""
    mobilenet = pytest.importorskip("pipeline.models.mobilenet")
    segmenters = pytest.importorskip("pipeline.models.feature_segmenter")
    from tests.conftest import moving_square_frames

    frames, boxes = moving_square_frames(n=1)
    backbone = mobilenet.MobileNetV2Backbone()
    fm = backbone.features(frames)[0]
    x0, y0, x1, y1 = boxes[0]
    prompt = BoxPrompt(box=(x0 - 10, y0 - 10, x1 + 10, y1 + 10))
    (obs,) = resolve_prompts([prompt], frames[0], fm, segmenters.FeatureSegmenter())
    truth = box_to_mask(boxes[0], *frames[0].shape[:2])
    assert mask_iou(obs.mask, truth) > 0.7


def test_exemplar_enrolled_on_one_frame_finds_the_square_later() -> None:
    """Real MobileNetV2 features: enrol the textured square of frame 0, find it in frame 20."""
    mobilenet = pytest.importorskip("pipeline.models.mobilenet")
    from pipeline.masks import box_iou
    from tests.conftest import moving_square_frames

    frames, boxes = moving_square_frames(n=21)
    backbone = mobilenet.MobileNetV2Backbone()
    exemplar = Exemplar.from_reference(frames[0], boxes[0], backbone, name="square")
    assert exemplar.background.shape == (4, backbone.channels)
    fm = backbone.features([frames[20]])[0]
    (box, score), *_ = exemplar.match(fm, 0.5)
    assert score > 0.5
    assert box_iou([box], [boxes[20]])[0, 0] > 0.6


def test_exemplar_threshold_outside_cosine_range_is_refused(files: dict[str, Path]) -> None:
    prompt = ExemplarPrompt(image=str(files["ref"]), box=(20, 30, 50, 50), threshold=1.5)
    _, (err,) = validate_prompts([prompt], W, H)
    assert str(err) == (
        "prompt 0 (exemplar 'ref.png'): threshold 1.5 is outside -1..1 — give a cosine "
        "similarity, e.g. 0.5"
    )
