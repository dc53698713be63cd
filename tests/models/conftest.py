"""Tiny randomly initialised models for the model tests (real architectures, small sizes)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

SCENE_BOX = (96, 56, 168, 136)


@pytest.fixture()
def scene_box() -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the object in ``scene``."""
    return SCENE_BOX


@pytest.fixture()
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A 256x192 textured red rectangle (``SCENE_BOX``) on a textured green background, and its
    (H, W) bool mask."""
    h, w = 192, 256
    rng = np.random.default_rng(1)
    image = (rng.integers(0, 50, size=(h, w, 3)) + np.array([40, 110, 40])).astype(np.uint8)
    x0, y0, x1, y1 = SCENE_BOX
    image[y0:y1, x0:x1] = (rng.integers(0, 40, size=(y1 - y0, x1 - x0, 3)) + [190, 30, 40]).astype(
        np.uint8
    )
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return image, mask


@pytest.fixture()
def tiny_dinov2_config():
    from transformers import Dinov2Config

    return Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14, image_size=56
    )


@pytest.fixture()
def tiny_vit_config():
    from transformers import ViTConfig

    return ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=8,
        image_size=64,
    )


@pytest.fixture()
def tiny_sam():
    """SAM from segment-anything's own modules at 256 px input, 32-wide everywhere."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(0)
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=2,
            embed_dim=32,
            img_size=256,
            mlp_ratio=2,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2,
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=[1],
            window_size=4,
            out_chans=32,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=32,
            image_embedding_size=(16, 16),
            input_image_size=(256, 256),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
