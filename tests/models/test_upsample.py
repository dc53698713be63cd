"""Edge-aware upsampling of patch-grid probabilities."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.masks import mask_iou
from pipeline.models.upsample import cell_radius, upsample_probs


def _edge_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bright rectangle whose edges fall inside 16-px patches, its mask, and a coarse (30x40)
    probability grid that only knows the patch-aligned box around it."""
    image = np.full((480, 640, 3), 30, np.uint8)
    image[100:300, 200:404] = 200
    truth = np.zeros((480, 640), bool)
    truth[100:300, 200:404] = True
    probs = np.zeros((2, 30, 40), np.float32)
    probs[0, 6:19, 12:26] = 1.0  # cells 96..304 x 192..416
    probs[1] = 1.0 - probs[0]
    return image, truth, probs


def test_shapes_range_and_constants():
    image, _, probs = _edge_scene()
    out = upsample_probs(probs, image)
    assert out.shape == (2, 480, 640) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    flat = upsample_probs(np.full((1, 30, 40), 0.3, np.float32), image)
    np.testing.assert_allclose(flat, 0.3, atol=1e-4)
    many = upsample_probs(np.tile(probs, (5, 1, 1)), image)  # more than 4 maps at once
    np.testing.assert_allclose(many[8:10], out, atol=1e-5)


def test_edges_follow_the_image():
    image, truth, probs = _edge_scene()
    bilinear = cv2.resize(probs[0], (640, 480), interpolation=cv2.INTER_LINEAR) > 0.5
    small = upsample_probs(probs, image, radius=8, eps=1e-3)[0] > 0.5
    # the radius the tracker and the feature segmenter use: one patch cell (16 px here)
    assert cell_radius(probs.shape[1:], image.shape) == 16
    cell = upsample_probs(probs, image, radius=16, eps=1e-3)[0] > 0.5
    assert mask_iou(bilinear, truth) < 0.88
    assert mask_iou(small, truth) > mask_iou(bilinear, truth) + 0.03
    assert mask_iou(cell, truth) > 0.97


def test_bad_input():
    image, _, probs = _edge_scene()
    with pytest.raises(ValueError, match="probs must be"):
        upsample_probs(probs[0], image)
    with pytest.raises(ValueError, match="image must be"):
        upsample_probs(probs, image[:, :, 0])
    assert upsample_probs(probs[:0], image).shape == (0, 480, 640)


def test_radius_spans_a_cell_and_never_less_than_the_floor():
    # stride-8 cells at a 448 short side: 720p frames have 13-pixel cells, 240p ones 4-pixel cells
    assert cell_radius((56, 100), (720, 1280, 3)) == 13
    assert cell_radius((56, 75), (240, 320, 3)) == 8
    assert cell_radius((56, 75), (240, 320, 3), at_least=2) == 4
