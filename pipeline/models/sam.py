"""SAM (segment-anything) as the ``Segmenter`` for ``sam-vit_b|vit_l|vit_h``.

Cost: SAM's image encoder takes about 22 s per 1024x1024 frame for vit_b on a 2-core CPU (vit_h is
several times slower); the prompt encoder and mask decoder take milliseconds per object. SAM is
therefore meant for keyframes (first frame, re-detections, periodic refreshes), not every frame, on
a CPU; on a GPU it is fast enough for more.

The image embedding is computed once per frame and reused for every object and prompt of that frame
(cached by the identity of the image array: pass a new array for a new frame, never one refilled
in place). Objects whose prompts have the same shape (number of points, a box or not, a mask input
or not) are decoded together in one batched call (the steps of ``SamPredictor.predict_torch``, with
the best candidate chosen before upsampling), so each object's mask is the one it gets decoded
alone. With ``multimask``, a single ambiguous prompt (one point alone, or one box alone) gets three
candidate masks and the one with the best predicted IoU is kept; any other combination (several
points, point + box, a mask prior) gets SAM's single mask, as SAM's authors advise.

Coordinates: points are pixel indices (x = column, y = row), as ``SamPredictor`` takes them; boxes
are pixel edges with x1, y1 exclusive (``pipeline.masks.mask_to_box``), turned here into SAM's
corner pixel indices (x1 - 1, y1 - 1; SAM's own ``batched_mask_to_box`` convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.models.base import MaskProposal, MaskRequest, ModelError
from pipeline.models.config import SegmenterConfig
from pipeline.models.device import inference_dtype, resolve_device
from pipeline.models.weights import load_state_dict, resolve_sam_checkpoint, sam_type
from pipeline.types import FeatureMap

#: Probabilities are clipped to [eps, 1 - eps] before turning a mask prior into SAM logits.
MASK_PRIOR_EPS = 1e-4


class SamSegmenter:
    """SAM behind the ``Segmenter`` protocol.

    Build with ``SamSegmenter.from_checkpoint("sam-vit_b", config)`` (weights resolved by
    ``pipeline.models.weights``), or wrap an existing ``segment_anything.modeling.Sam`` with
    ``SamSegmenter(name, sam, config)``.
    """

    def __init__(self, name: str, sam: Any, config: SegmenterConfig | None = None) -> None:
        from segment_anything import SamPredictor

        self.name = name
        self.config = config or SegmenterConfig()
        self.device = resolve_device(self.config.device)
        self.half = inference_dtype(self.device, self.config.half) == torch.float16
        self.model = sam.eval().to(self.device)
        self.predictor = SamPredictor(self.model)
        self._image: np.ndarray | None = None

    @classmethod
    def from_checkpoint(cls, name: str, config: SegmenterConfig | None = None) -> SamSegmenter:
        """The official SAM ``name`` (``sam-vit_b|vit_l|vit_h``) with its checkpoint.

        Raises:
            ModelError: unknown name, checkpoint unavailable, or a checkpoint that does not fit.
        """
        from segment_anything import sam_model_registry

        config = config or SegmenterConfig()
        model_type = sam_type(name)
        path = resolve_sam_checkpoint(
            name, config.checkpoint, config.cache_dir, config.allow_download
        )
        sam = sam_model_registry[model_type](checkpoint=None)
        try:
            sam.load_state_dict(load_state_dict(path))
        except RuntimeError as exc:
            raise ModelError(
                f"{path} is not a SAM {model_type} checkpoint ({exc}); give the matching "
                f"sam_{model_type}_*.pth"
            ) from exc
        return cls(f"sam-{model_type}", sam, config)

    def set_image(self, image: np.ndarray) -> None:
        """Compute the image embedding of ``image`` unless it is the frame already embedded."""
        if self._image is image:
            return
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
        if self.half:
            with torch.autocast(self.device.type, dtype=torch.float16):
                self.predictor.set_image(image, image_format="RGB")
            self.predictor.features = self.predictor.features.float()
        else:
            self.predictor.set_image(image, image_format="RGB")
        self._image = image

    def segment(
        self, image: np.ndarray, features: FeatureMap | None, requests: Sequence[MaskRequest]
    ) -> list[MaskProposal]:
        """One mask per request; all requests share one image embedding (``features`` unused)."""
        groups: dict[tuple[int, bool, bool], list[int]] = {}
        for i, req in enumerate(requests):
            key = (
                0 if req.points is None else len(req.points),
                req.box is not None,
                req.mask_input is not None,
            )
            if not any(key):
                raise ValueError(f"request {i} has no prompt: give points, a box or a mask_input")
            groups.setdefault(key, []).append(i)
        if not requests:
            return []
        self.set_image(image)
        out: dict[int, MaskProposal] = {}
        step = self.config.max_objects_per_call
        for idx in groups.values():
            for s in range(0, len(idx), step):
                chunk = idx[s : s + step]
                out.update(zip(chunk, self._decode([requests[i] for i in chunk]), strict=True))
        return [out[i] for i in range(len(requests))]

    @torch.inference_mode()
    def _decode(self, reqs: list[MaskRequest]) -> list[MaskProposal]:
        """One batched prompt-encoder + mask-decoder call for requests of the same prompt shape."""
        pred = self.predictor
        size = pred.original_size
        coords = labels = boxes = masks = None
        first = reqs[0]
        n_points = 0 if first.points is None else len(first.points)
        if n_points:
            coords, labels = self._points(reqs)
            coords = pred.transform.apply_coords_torch(coords, size)
        if first.box is not None:
            corners = [(x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)) for x0, y0, x1, y1 in
                       (r.box for r in reqs)]  # fmt: skip
            boxes = torch.tensor(corners, dtype=torch.float32, device=self.device)
            boxes = pred.transform.apply_boxes_torch(boxes, size)
        if first.mask_input is not None:
            masks = torch.stack([self._mask_logits(r.mask_input) for r in reqs])
        ambiguous = masks is None and (n_points, boxes is not None) in ((1, False), (0, True))
        # predict_torch's steps, with the best of the candidate masks chosen at low resolution so
        # only one mask per object is upsampled to the frame (3x less memory and time at 1080p)
        sam = self.model
        sparse, dense = sam.prompt_encoder(
            points=None if coords is None else (coords, labels), boxes=boxes, masks=masks
        )
        low_res, iou = sam.mask_decoder(
            image_embeddings=pred.features,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=self.config.multimask and ambiguous,
        )
        rows = torch.arange(len(reqs), device=iou.device)
        best = iou.argmax(dim=1)
        full = sam.postprocess_masks(low_res[rows, best][:, None], pred.input_size, size)
        chosen = (full[:, 0] > sam.mask_threshold).cpu().numpy()
        scores = iou[rows, best].clamp(0.0, 1.0).float().cpu().numpy()
        return [MaskProposal(chosen[b], float(scores[b])) for b in range(len(reqs))]

    def _points(self, reqs: list[MaskRequest]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, 2) coordinates and (B, N) labels of requests with N points each."""
        n = len(reqs[0].points)
        coords = np.zeros((len(reqs), n, 2), np.float32)
        labels = np.zeros((len(reqs), n), np.int64)
        for b, r in enumerate(reqs):
            pts = np.asarray(r.points, np.float32).reshape(-1, 2)
            lab = np.ones(len(pts)) if r.point_labels is None else np.asarray(r.point_labels)
            if len(lab) != len(pts):
                raise ValueError(
                    f"{len(pts)} points but {len(lab)} point_labels; give one label per point"
                )
            coords[b, : len(pts)] = pts
            labels[b, : len(pts)] = lab
        return (
            torch.from_numpy(coords).to(self.device),
            torch.from_numpy(labels).to(self.device),
        )

    def _mask_logits(self, prior: np.ndarray) -> torch.Tensor:
        """A full-frame mask prior as SAM's low-res mask input: (1, 4e, 4e) logits in the padded,
        longest-side-resized frame (e = the embedding size)."""
        pred = self.predictor
        if tuple(np.shape(prior)) != tuple(pred.original_size):
            raise ValueError(
                f"mask_input has shape {np.shape(prior)} but the frame is {pred.original_size}; "
                "give a mask of the frame's size"
            )
        h_in, w_in = pred.input_size
        side = self.model.image_encoder.img_size
        low = self.model.prompt_encoder.mask_input_size
        resized = cv2.resize(
            np.asarray(prior, np.float32), (w_in, h_in), interpolation=cv2.INTER_LINEAR
        )
        padded = np.zeros((side, side), np.float32)
        padded[:h_in, :w_in] = resized
        small = cv2.resize(padded, (low[1], low[0]), interpolation=cv2.INTER_AREA)
        p = np.clip(small, MASK_PRIOR_EPS, 1.0 - MASK_PRIOR_EPS)
        return torch.from_numpy(np.log(p / (1.0 - p))[None]).to(self.device)
