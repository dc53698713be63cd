"""SAM segmenter on a tiny SAM built from segment-anything's own modules (random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.models.base import MaskRequest, Segmenter
from pipeline.models.config import SegmenterConfig
from pipeline.models.sam import SamSegmenter


@pytest.fixture()
def segmenter(tiny_sam) -> SamSegmenter:
    return SamSegmenter("sam-tiny", tiny_sam, SegmenterConfig(device="cpu"))


@pytest.fixture()
def encoder_calls(segmenter) -> list[int]:
    calls: list[int] = []
    segmenter.model.image_encoder.register_forward_hook(
        lambda _module, inputs, _output: calls.append(int(inputs[0].shape[0]))
    )
    return calls


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(120, 200, 3), dtype=np.uint8)


def test_objects_of_a_frame_share_one_embedding(segmenter, encoder_calls):
    assert isinstance(segmenter, Segmenter)
    image = _image()
    requests = [
        MaskRequest(box=(10, 10, 60, 70)),
        MaskRequest(box=(100, 20, 160, 100)),
        MaskRequest(points=np.array([[30, 30], [45, 40]]), point_labels=np.array([1, 0])),
        MaskRequest(points=np.array([[120, 60]])),
        MaskRequest(mask_input=np.zeros((120, 200), bool)),
        MaskRequest(box=(1, 1, 40, 40), points=np.array([[5, 5]]), mask_input=np.ones((120, 200))),
    ]
    out = segmenter.segment(image, None, requests)
    assert encoder_calls == [1]
    assert len(out) == len(requests)
    for proposal in out:
        assert proposal.mask.shape == (120, 200) and proposal.mask.dtype == bool
        assert 0.0 <= proposal.score <= 1.0
    segmenter.segment(image, None, requests[:2])  # same frame: embedding reused
    assert encoder_calls == [1]
    segmenter.segment(_image(1), None, requests[:1])  # a new frame: encoded once more
    assert encoder_calls == [1, 1]


def test_batched_boxes_match_one_by_one(segmenter):
    image = _image()
    boxes = [(10, 10, 60, 70), (100, 20, 160, 100), (50, 50, 120, 110)]
    batched = segmenter.segment(image, None, [MaskRequest(box=b) for b in boxes])
    for box, proposal in zip(boxes, batched, strict=True):
        alone = segmenter.segment(image, None, [MaskRequest(box=box)])[0]
        assert np.array_equal(alone.mask, proposal.mask)
        assert alone.score == pytest.approx(proposal.score, abs=1e-5)


def test_multimask_keeps_the_best_predicted_iou(segmenter):
    image = _image()
    point = np.array([[80.0, 60.0]])
    got = segmenter.segment(image, None, [MaskRequest(points=point, point_labels=np.array([1]))])
    pred = segmenter.predictor
    coords = pred.transform.apply_coords_torch(
        torch.tensor(point[None], dtype=torch.float32), (120, 200)
    )
    with torch.inference_mode():
        masks, iou, _ = pred.predict_torch(
            coords, torch.ones(1, 1, dtype=torch.int64), multimask_output=True
        )
    assert masks.shape[1] == 3
    best = int(iou[0].argmax())
    assert np.array_equal(got[0].mask, masks[0, best].numpy())
    assert got[0].score == pytest.approx(float(iou[0, best].clamp(0, 1)), abs=1e-6)


def test_single_mask_mode(tiny_sam):
    segmenter = SamSegmenter("sam-tiny", tiny_sam, SegmenterConfig(device="cpu", multimask=False))
    image = _image()
    got = segmenter.segment(image, None, [MaskRequest(box=(10, 10, 60, 70))])[0]
    pred = segmenter.predictor
    # edges (10, 10, 60, 70) are SAM's pixel-index corners (10, 10, 59, 69)
    box = pred.transform.apply_boxes_torch(torch.tensor([[10.0, 10, 59, 69]]), (120, 200))
    with torch.inference_mode():
        masks, _, _ = pred.predict_torch(None, None, box, multimask_output=False)
    assert masks.shape[1] == 1
    assert np.array_equal(got.mask, masks[0, 0].numpy())


def test_mask_input_reaches_the_decoder(segmenter):
    """The prior arrives as low-res logits in SAM's padded frame and changes the answer."""
    seen: list[torch.Tensor] = []
    segmenter.model.prompt_encoder.mask_downscaling.register_forward_hook(
        lambda _module, inputs, _output: seen.append(inputs[0].clone())
    )
    image = _image()
    prior = np.zeros((120, 200), bool)
    prior[20:90, 30:150] = True
    box = (20, 10, 160, 100)
    segmenter.segment(image, None, [MaskRequest(mask_input=prior)])
    logits = seen[0][0, 0].numpy()
    assert logits.shape == (64, 64)  # 4x the 16x16 embedding of a 256 px SAM
    # 200 px wide frame -> scale 256/200: rows 20..90 -> 6..29, cols 30..150 -> 10..48 (of 64)
    assert (logits[8:27, 12:46] > 5).all()
    assert (logits[:4] < -5).all() and (logits[40:] < -5).all() and (logits[:, 52:] < -5).all()
    with_prior = segmenter.segment(image, None, [MaskRequest(box=box, mask_input=prior)])[0]
    with_inverse = segmenter.segment(image, None, [MaskRequest(box=box, mask_input=~prior)])[0]
    assert not np.array_equal(with_prior.mask, with_inverse.mask)


def test_bad_requests(segmenter):
    image = _image()
    with pytest.raises(ValueError, match="request 1 has no prompt"):
        segmenter.segment(image, None, [MaskRequest(box=(0, 0, 5, 5)), MaskRequest()])
    with pytest.raises(ValueError, match="mask_input has shape"):
        segmenter.segment(image, None, [MaskRequest(mask_input=np.zeros((10, 10)))])
    with pytest.raises(ValueError, match="point_labels"):
        segmenter.segment(
            image, None, [MaskRequest(points=np.zeros((2, 2)), point_labels=np.ones(3))]
        )
    assert segmenter.segment(image, None, []) == []


def _reference(segmenter, image, points=None, labels=None, box=None, multimask=False):
    """segment_anything's SamPredictor on the same model: (best mask, its score)."""
    pred = segmenter.predictor
    pred.set_image(image)
    masks, iou, _ = pred.predict(
        point_coords=points, point_labels=labels, box=box, multimask_output=multimask
    )
    best = int(iou.argmax())
    return masks[best], float(np.clip(iou[best], 0, 1))


def test_multimask_only_for_one_ambiguous_prompt(segmenter):
    """One point or one box alone: three candidates; several points or point + box: one mask."""
    image = _image()
    one_point = (np.array([[80.0, 60.0]]), np.array([1]))
    two_points = (np.array([[80.0, 60.0], [30.0, 20.0]]), np.array([1, 0]))
    box = np.array([10.0, 10, 59, 69])  # SAM's pixel-index corners of edges (10, 10, 60, 70)
    cases = [
        (MaskRequest(points=one_point[0], point_labels=one_point[1]), dict(
            points=one_point[0], labels=one_point[1], multimask=True)),
        (MaskRequest(box=(10, 10, 60, 70)), dict(box=box, multimask=True)),
        (MaskRequest(points=two_points[0], point_labels=two_points[1]), dict(
            points=two_points[0], labels=two_points[1])),
        (MaskRequest(points=one_point[0], point_labels=one_point[1], box=(10, 10, 60, 70)), dict(
            points=one_point[0], labels=one_point[1], box=box)),
    ]  # fmt: skip
    for request, reference in cases:
        got = segmenter.segment(image, None, [request])[0]
        want, score = _reference(segmenter, image, **reference)
        assert np.array_equal(got.mask, want), reference
        assert got.score == pytest.approx(score, abs=1e-5)


def test_mixed_point_counts_decode_as_each_alone(segmenter):
    """Objects with 1 and 3 points in one call get the masks they get decoded one by one."""
    image = _image()
    requests = [
        MaskRequest(points=np.array([[40.0, 40.0]]), point_labels=np.array([1])),
        MaskRequest(
            points=np.array([[120.0, 60.0], [130.0, 70.0], [20.0, 100.0]]),
            point_labels=np.array([1, 1, 0]),
        ),
        MaskRequest(points=np.array([[150.0, 30.0]]), point_labels=np.array([1])),
    ]
    together = segmenter.segment(image, None, requests)
    for request, proposal in zip(requests, together, strict=True):
        alone = segmenter.segment(image, None, [request])[0]
        assert np.array_equal(alone.mask, proposal.mask)
        assert alone.score == pytest.approx(proposal.score, abs=1e-5)


def test_mask_box_reaches_sam_as_pixel_indices(segmenter):
    """A box from mask_to_box (exclusive edges) is the box SAM's own batched_mask_to_box gives."""
    from segment_anything.utils.amg import batched_mask_to_box

    from pipeline.masks import mask_to_box

    image = _image()
    mask = np.zeros((120, 200), bool)
    mask[30:80, 50:130] = True
    sam_box = batched_mask_to_box(torch.from_numpy(mask)[None]).numpy()[0].astype(np.float32)
    assert sam_box.tolist() == [50, 30, 129, 79]
    got = segmenter.segment(image, None, [MaskRequest(box=mask_to_box(mask))])[0]
    want, _ = _reference(segmenter, image, box=sam_box, multimask=True)
    assert np.array_equal(got.mask, want)
