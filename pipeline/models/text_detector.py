"""Open-vocabulary boxes from text queries: OWLv2 (transformers ``Owlv2ForObjectDetection``).

Text prompts ("a dog", "red cup") become boxes that the segmenter turns into masks. Images are
prepared by transformers' ``Owlv2ImageProcessor`` itself (pad to a square at the bottom/right with
0.0 after rescaling, as the official implementation; Gaussian anti-aliasing, resize to the model's
input size, CLIP mean/std); boxes come back in pixels of the original frame.
transformers is imported lazily. Weights resolve through ``pipeline.models.weights``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.models.base import ModelError
from pipeline.models.device import inference_dtype, resolve_device
from pipeline.models.weights import resolve_hf_model

DEFAULT_MODEL = "google/owlv2-base-patch16-ensemble"

Box = tuple[float, float, float, float]


def boxes_to_xyxy(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """OWLv2 boxes (N, 4) cx, cy, w, h relative to the padded square -> xyxy pixels of the frame.

    The frame sits at the top-left of a square of side max(height, width), so one scale serves both
    axes; boxes are clipped to the frame.
    """
    side = float(max(height, width))
    cx, cy, w, h = boxes.unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1) * side
    limits = torch.tensor([width, height, width, height], dtype=xyxy.dtype, device=xyxy.device)
    return torch.minimum(xyxy.clamp(min=0.0), limits)


class TextDetector:
    """Boxes for text queries with OWLv2.

    Args:
        model: A Hugging Face repository id or a registry name of ``weights.HF_REPOS``.
        device: ``auto`` (cuda, mps, cpu) or a torch device string.
        weights: A local model folder (config.json, weights, tokenizer files) instead of the hub.
        cache_dir: Hugging Face cache directory.
        half: float16 on a GPU (ignored on CPU).
        nms_iou: Per-label non-maximum suppression IoU; None keeps every box above the threshold.

    Raises:
        ModelError: weights not available (the message says how to get them).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        weights: Path | None = None,
        cache_dir: Path | None = None,
        half: bool = False,
        nms_iou: float | None = 0.3,
    ) -> None:
        from transformers import AutoTokenizer, Owlv2ForObjectDetection, Owlv2ImageProcessor

        path = resolve_hf_model(
            model, weights, cache_dir, alternative="or prompt with boxes or points instead of text"
        )
        try:
            hf_model = Owlv2ForObjectDetection.from_pretrained(str(path))
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            processor = Owlv2ImageProcessor.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the OWLv2 model {model} from {path}: {exc}") from exc
        self._setup(model, hf_model, tokenizer, processor, device, half, nms_iou)

    @classmethod
    def from_model(
        cls,
        hf_model: Any,
        tokenizer: Any,
        device: str = "auto",
        half: bool = False,
        nms_iou: float | None = 0.3,
        name: str = "owlv2",
        processor: Any = None,
    ) -> TextDetector:
        """Wrap an already built ``Owlv2ForObjectDetection`` and its tokenizer; ``processor``
        (an ``Owlv2ImageProcessor``) defaults to OWLv2's at the model's input size."""
        from transformers import Owlv2ImageProcessor

        if processor is None:
            side = int(hf_model.config.vision_config.image_size)
            processor = Owlv2ImageProcessor(size={"height": side, "width": side})
        detector = cls.__new__(cls)
        detector._setup(name, hf_model, tokenizer, processor, device, half, nms_iou)
        return detector

    def _setup(
        self,
        name: str,
        hf_model: Any,
        tokenizer: Any,
        processor: Any,
        device: str,
        half: bool,
        nms_iou: float | None,
    ) -> None:
        self.name = name
        self.device = resolve_device(device)
        self.dtype = inference_dtype(self.device, half)
        self.model = hf_model.eval().to(device=self.device, dtype=self.dtype)
        self.tokenizer = tokenizer
        self.processor = processor
        self.nms_iou = nms_iou
        self.max_text_length = int(hf_model.config.text_config.max_position_embeddings)

    def _pixels(self, image: np.ndarray) -> torch.Tensor:
        """The model input of one frame, prepared by ``Owlv2ImageProcessor`` on the model's
        device."""
        out = self.processor(images=image, return_tensors="pt", device=self.device)
        return out["pixel_values"].to(device=self.device, dtype=self.dtype)

    @torch.inference_mode()
    def detect(
        self, image: np.ndarray, queries: list[str], threshold: float = 0.1
    ) -> list[tuple[Box, float, str]]:
        """Boxes of ``queries`` in ``image`` (HxWx3 uint8 RGB), best first.

        Returns:
            (box_xyxy in pixels of the frame, score in [0, 1], the query it matched) per detection.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
        if not queries or not all(isinstance(q, str) and q.strip() for q in queries):
            raise ValueError(
                f"queries must be a non-empty list of non-empty strings, got {queries!r}"
            )
        text = self.tokenizer(
            queries,
            padding="max_length",
            truncation=True,
            max_length=self.max_text_length,
            return_tensors="pt",
        )
        out = self.model(
            input_ids=text["input_ids"].to(self.device),
            attention_mask=text["attention_mask"].to(self.device),
            pixel_values=self._pixels(image),
        )
        probs = out.logits[0].float().sigmoid()  # (patches, queries)
        scores, labels = probs.max(dim=-1)
        boxes = boxes_to_xyxy(out.pred_boxes[0].float(), *image.shape[:2])
        keep = scores >= threshold
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if self.nms_iou is not None and len(scores):
            from torchvision.ops import batched_nms

            order = batched_nms(boxes, scores, labels, self.nms_iou)
        else:
            order = scores.argsort(descending=True)
        return [
            (
                tuple(float(v) for v in boxes[i].tolist()),
                float(scores[i]),
                queries[int(labels[i])],
            )
            for i in order.tolist()
        ]
