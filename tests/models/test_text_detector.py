"""OWLv2 text detector on a tiny random model: box plumbing, shapes and label mapping."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch

from pipeline.models.base import ModelError
from pipeline.models.text_detector import TextDetector, boxes_to_xyxy


@pytest.fixture()
def detector() -> TextDetector:
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = Owlv2Config(
        text_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=len(vocab),
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
        ),
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = Owlv2ForObjectDetection(config)
    return TextDetector.from_model(model, tokenizer, device="cpu", nms_iou=None)


def test_boxes_to_xyxy_values():
    # a 100x200 frame sits at the top-left of a 200x200 square
    boxes = torch.tensor([[0.5, 0.25, 0.5, 0.5], [0.9, 0.9, 0.4, 0.4]])
    out = boxes_to_xyxy(boxes, height=100, width=200)
    np.testing.assert_allclose(out[0].numpy(), [50, 0, 150, 100])
    np.testing.assert_allclose(out[1].numpy(), [140, 100, 200, 100])  # clipped to the frame


def test_detect_shapes_and_labels(detector):
    image = np.random.default_rng(0).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
    queries = ["a dog", "red cup", "person"]
    found = detector.detect(image, queries, threshold=0.0)
    assert len(found) == (64 // 16) ** 2  # one box per patch when nothing is filtered
    scores = [score for _, score, _ in found]
    assert scores == sorted(scores, reverse=True)
    for (x0, y0, x1, y1), score, label in found:
        assert 0 <= x0 <= x1 <= 120 and 0 <= y0 <= y1 <= 90
        assert 0.0 <= score <= 1.0 and label in queries
    # each detection's label is the query with the highest logit for its patch
    text = detector.tokenizer(queries, padding="max_length", max_length=16, return_tensors="pt")
    with torch.inference_mode():
        out = detector.model(**text, pixel_values=detector._pixels(image))
    best = out.logits[0].sigmoid().max(dim=-1)
    expected = sorted(
        ((float(s), queries[int(i)]) for s, i in zip(best.values, best.indices, strict=True)),
        reverse=True,
    )
    assert [(pytest.approx(s, abs=1e-6), q) for s, q in expected] == [(s, q) for _, s, q in found]
    assert detector.detect(image, queries, threshold=1.01) == []
    single = detector.detect(image, ["tree"], threshold=0.0)
    assert {label for _, _, label in single} == {"tree"}


def test_nms_and_bad_queries(detector):
    image = np.zeros((64, 64, 3), np.uint8)
    detector.nms_iou = 0.0  # any overlap suppresses
    kept = detector.detect(image, ["cat"], threshold=0.0)
    boxes = torch.tensor([b for b, _, _ in kept])
    from torchvision.ops import box_iou

    iou = box_iou(boxes, boxes) - torch.eye(len(boxes))
    assert len(kept) >= 1 and float(iou.max()) <= 0.0
    with pytest.raises(ValueError, match="queries must be"):
        detector.detect(image, [], threshold=0.1)


def test_offline_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="dinotrack models pull google/owlv2-base"):
        TextDetector(cache_dir=tmp_path, device="cpu")


def test_pixels_are_the_processors_on_a_non_square_frame(detector):
    """The model input is exactly Owlv2ImageProcessor's (padding with 0.0 at the bottom/right)."""
    from transformers import Owlv2ImageProcessor

    image = np.random.default_rng(3).integers(0, 256, size=(90, 150, 3), dtype=np.uint8)
    processor = Owlv2ImageProcessor(size={"height": 64, "width": 64})
    want = processor(images=image, return_tensors="pt")["pixel_values"]
    got = detector._pixels(image)
    assert got.shape == want.shape == (1, 3, 64, 64)
    assert torch.equal(got, want)
    # the padded rows below the frame hold the normalised 0.0 pad, not grey
    pad = (0.0 - torch.tensor(processor.image_mean)) / torch.tensor(processor.image_std)
    torch.testing.assert_close(got[0, :, -1, 0], pad.float())
