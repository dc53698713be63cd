"""Masks from patch features alone (``--segmenter none``) with the real ImageNet MobileNetV2."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.masks import box_to_mask, mask_iou
from pipeline.models.base import MaskRequest, Segmenter
from pipeline.models.config import BackboneConfig, SegmenterConfig
from pipeline.models.feature_segmenter import FeatureSegmenter
from pipeline.models.registry import build_segmenter


@pytest.fixture(scope="module")
def mobilenet():
    from pipeline.models.mobilenet import MobileNetV2Backbone

    return MobileNetV2Backbone(
        BackboneConfig(name="mobilenetv2-imagenet", device="cpu", short_side=192)
    )


@pytest.fixture()
def segmenter() -> FeatureSegmenter:
    segmenter = build_segmenter("none", SegmenterConfig())
    assert isinstance(segmenter, FeatureSegmenter) and isinstance(segmenter, Segmenter)
    return segmenter


def test_box_prompt_finds_the_object(segmenter, mobilenet, scene, scene_box):
    image, truth = scene
    features = mobilenet.features([image])[0]
    x0, y0, x1, y1 = scene_box
    loose = (x0 - 16, y0 - 16, x1 + 16, y1 + 16)  # a box with background margin
    out = segmenter.segment(image, features, [MaskRequest(box=loose)])[0]
    assert out.mask.shape == truth.shape and out.mask.dtype == bool
    assert mask_iou(out.mask, truth) > 0.5
    assert mask_iou(out.mask, truth) > mask_iou(box_to_mask(loose, *truth.shape), truth)
    assert 0.0 <= out.score <= 1.0


def test_point_prompt_grows_over_the_object(segmenter, mobilenet, scene, scene_box):
    image, truth = scene
    features = mobilenet.features([image])[0]
    x0, y0, x1, y1 = scene_box
    centre = np.array([[(x0 + x1) / 2, (y0 + y1) / 2]])
    out = segmenter.segment(image, features, [MaskRequest(points=centre)])[0]
    assert mask_iou(out.mask, truth) > 0.5


def test_negative_point_stops_growth(segmenter, mobilenet, scene, scene_box):
    image, truth = scene
    features = mobilenet.features([image])[0]
    x0, y0, x1, y1 = scene_box
    points = np.array([[x0 + 12, (y0 + y1) / 2], [x1 - 12, (y0 + y1) / 2]])
    both = segmenter.segment(image, features, [MaskRequest(points=points[:1])])[0]
    stopped = segmenter.segment(
        image, features, [MaskRequest(points=points, point_labels=np.array([1, 0]))]
    )[0]
    assert stopped.mask.sum() < both.mask.sum()
    assert stopped.mask[int(points[0, 1]), int(points[0, 0])]
    assert not stopped.mask[int(points[1, 1]), int(points[1, 0])]


def test_mask_input_alone_passes_through(segmenter, mobilenet, scene, scene_box):
    image, truth = scene
    features = mobilenet.features([image])[0]
    out = segmenter.segment(image, features, [MaskRequest(mask_input=truth)])[0]
    assert np.array_equal(out.mask, truth) and out.score == 1.0


def test_several_objects_in_one_call(segmenter, mobilenet, scene, scene_box):
    image, truth = scene
    features = mobilenet.features([image])[0]
    x0, y0, x1, y1 = scene_box
    out = segmenter.segment(
        image,
        features,
        [MaskRequest(box=(x0 - 8, y0 - 8, x1 + 8, y1 + 8)), MaskRequest(mask_input=truth)],
    )
    assert len(out) == 2 and mask_iou(out[0].mask, truth) > 0.5


def test_errors(segmenter, mobilenet, scene, scene_box):
    image, _ = scene
    features = mobilenet.features([image])[0]
    with pytest.raises(ValueError, match="request 0 has no prompt"):
        segmenter.segment(image, features, [MaskRequest()])
    with pytest.raises(ValueError, match="features were computed for"):
        segmenter.segment(image[:100], features, [MaskRequest(box=(0, 0, 10, 10))])
    with pytest.raises(ValueError, match="positive point"):
        segmenter.segment(
            image, features, [MaskRequest(points=np.array([[5, 5]]), point_labels=np.array([0]))]
        )
