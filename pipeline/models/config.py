"""Settings of backbones and segmenters (validated pydantic models with documented defaults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class BackboneConfig(BaseModel):
    """How to build and run a patch-feature backbone.

    Attributes:
        name: Registry name (``pipeline.models.registry.BACKBONES``) or ``auto``: dinov2-small when
            its weights are available, otherwise mobilenetv2-imagenet.
        short_side: Short side of the model input in pixels; rounded to the nearest multiple of the
            backbone's patch size (aspect ratio kept).
        max_long_side: Cap on the long side of the model input; the short side shrinks to keep the
            aspect ratio when the cap applies.
        device: ``auto`` (cuda, then mps, then cpu), or a torch device string (``cpu``, ``cuda:1``).
        half: float16 inference; only on a GPU (ignored on CPU, where it is several times slower).
        batch_size: Frames per forward pass (frames of the same input size are batched together).
        weights: Local weights: a Hugging Face model directory (config.json + model.safetensors)
            or a single state-dict file (.safetensors, or .pt/.pth loaded with weights_only).
        cache_dir: Hugging Face cache directory; None uses the standard one (``HF_HOME``).
    """

    name: str = "auto"
    short_side: int = Field(448, gt=0)
    max_long_side: int = Field(1344, gt=0)
    device: str = "auto"
    half: bool = False
    batch_size: int = Field(4, gt=0)
    weights: Path | None = None
    cache_dir: Path | None = None


class SegmenterConfig(BaseModel):
    """How to build and run a segmenter (``none`` or ``sam-vit_b|vit_l|vit_h``).

    Attributes:
        checkpoint: Local SAM checkpoint (.pth); None downloads the official one once to
            ``cache_dir`` (sha256-checked).
        device: ``auto`` (cuda, then mps, then cpu), or a torch device string.
        half: Run SAM's image encoder in float16 (GPU only; ignored on CPU).
        cache_dir: Where SAM checkpoints are cached; None means ``~/.cache/dinotrack/sam``.
        allow_download: Download a missing checkpoint (off, or ``HF_HUB_OFFLINE=1``, makes a missing
            checkpoint an error that says how to get it).
        multimask: For a single ambiguous prompt (one point alone, or one box alone) ask SAM for
            three candidate masks and keep the one with the best predicted IoU; other prompts
            always get a single mask. False asks for a single mask every time.
        max_objects_per_call: Objects decoded together in one batched SAM decoder call (objects
            whose prompts have the same shape).
        guided_radius: Radius in pixels of the guided filter that upsamples feature-only masks.
        guided_eps: Regularisation of that guided filter (intensities in [0, 1]); smaller follows
            image edges more closely.
    """

    checkpoint: Path | None = None
    device: str = "auto"
    half: bool = False
    cache_dir: Path | None = None
    allow_download: bool = True
    multimask: bool = True
    max_objects_per_call: int = Field(16, gt=0)
    guided_radius: int = Field(8, ge=1)
    guided_eps: float = Field(1e-3, gt=0)
