"""Open-vocabulary boxes from text queries: OWLv2 (transformers ``Owlv2ForObjectDetection``).

Text prompts ("a dog", "red cup") become boxes that the segmenter turns into masks. Images are
prepared as OWLv2's own processor does (pad to a square at the bottom/right with grey, resize to the
model's input size, CLIP mean/std) with torch ops; boxes come back in pixels of the original frame.
transformers is imported lazily. Weights resolve through ``pipeline.models.weights``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.models.base import ModelError
from pipeline.models.device import inference_dtype, resolve_device
from pipeline.models.weights import resolve_hf_model

DEFAULT_MODEL = "google/owlv2-base-patch16-ensemble"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PAD_VALUE = 0.5  # OWLv2 pads with grey after rescaling to [0, 1]

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
        from transformers import AutoTokenizer, Owlv2ForObjectDetection

        path = resolve_hf_model(
            model, weights, cache_dir, alternative="or prompt with boxes or points instead of text"
        )
        try:
            hf_model = Owlv2ForObjectDetection.from_pretrained(str(path))
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the OWLv2 model {model} from {path}: {exc}") from exc
        self._setup(model, hf_model, tokenizer, device, half, nms_iou)

    @classmethod
    def from_model(
        cls,
        hf_model: Any,
        tokenizer: Any,
        device: str = "auto",
        half: bool = False,
        nms_iou: float | None = 0.3,
        name: str = "owlv2",
    ) -> TextDetector:
        """Wrap an already built ``Owlv2ForObjectDetection`` and its tokenizer."""
        detector = cls.__new__(cls)
        detector._setup(name, hf_model, tokenizer, device, half, nms_iou)
        return detector

    def _setup(
        self,
        name: str,
        hf_model: Any,
        tokenizer: Any,
        device: str,
        half: bool,
        nms_iou: float | None,
    ) -> None:
        self.name = name
        self.device = resolve_device(device)
        self.dtype = inference_dtype(self.device, half)
        self.model = hf_model.eval().to(device=self.device, dtype=self.dtype)
        self.tokenizer = tokenizer
        self.nms_iou = nms_iou
        self.image_size = int(hf_model.config.vision_config.image_size)
        self.max_text_length = int(hf_model.config.text_config.max_position_embeddings)
        self._mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)

    def _pixels(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        side = max(h, w)
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        x = x.permute(2, 0, 1).unsqueeze(0).float() / 255.0
        x = F.pad(x, (0, side - w, 0, side - h), value=PAD_VALUE)
        x = F.interpolate(
            x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True
        )
        return ((x - self._mean) / self._std).to(self.dtype)

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
