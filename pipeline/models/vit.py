"""ViT backbones: DINOv2 (transformers ``Dinov2Model``, or ``Dinov2WithRegistersModel`` for a
checkpoint with register tokens) and DINO (transformers ``ViTModel``).

Patch tokens of the last layer (after the final layer norm) form the (h, w, C) grid, the CLS token
is the global vector; both are L2-normalised. Frames are resized so the short side is
``short_side`` rounded to a multiple of the patch size (aspect kept, long side capped at
``max_long_side``), normalised with the ImageNet mean/std in torch, and frames that map to the
same input size are batched together. Position embeddings are interpolated to the input size.

transformers is imported lazily (it costs seconds), only when a model is built.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.models.base import ModelError
from pipeline.models.config import BackboneConfig
from pipeline.models.device import inference_dtype, resolve_device
from pipeline.models.mobilenet import input_size_for
from pipeline.models.weights import load_state_dict, resolve_hf_model
from pipeline.types import FeatureMap

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViTArch:
    """The architecture of a released checkpoint (so it can be built without the hub).

    Attributes:
        family: ``dinov2`` (Dinov2Model) or ``dino`` (ViTModel).
        hidden_size: Token width (the channels of the patch features).
        layers: Transformer blocks.
        heads: Attention heads.
        patch_size: Pixels per patch (the stride of the grid).
    """

    family: str
    hidden_size: int
    layers: int
    heads: int
    patch_size: int

    def hf_config(self) -> Any:
        """The transformers config of this architecture (random-init ready)."""
        if self.family == "dinov2":
            from transformers import Dinov2Config

            return Dinov2Config(
                hidden_size=self.hidden_size,
                num_hidden_layers=self.layers,
                num_attention_heads=self.heads,
                mlp_ratio=4,
                patch_size=self.patch_size,
                image_size=518,
                layerscale_value=1.0,
            )
        from transformers import ViTConfig

        return ViTConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=4 * self.hidden_size,
            patch_size=self.patch_size,
            image_size=224,
            qkv_bias=True,
        )


ARCHITECTURES: dict[str, ViTArch] = {
    "dinov2-small": ViTArch("dinov2", 384, 12, 6, 14),
    "dinov2-base": ViTArch("dinov2", 768, 12, 12, 14),
    "dinov2-large": ViTArch("dinov2", 1024, 24, 16, 14),
    "dino-vits16": ViTArch("dino", 384, 12, 6, 16),
    "dino-vits8": ViTArch("dino", 384, 12, 6, 8),
    "dino-vitb16": ViTArch("dino", 768, 12, 12, 16),
    "dino-vitb8": ViTArch("dino", 768, 12, 12, 8),
}

#: transformers model types a folder may hold for each family of ``ViTArch``.
MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "dinov2": ("dinov2", "dinov2_with_registers"),
    "dino": ("vit",),
}


def _model_class(model_type: str) -> tuple[Any, dict[str, Any]]:
    if model_type == "dinov2":
        from transformers import Dinov2Model

        return Dinov2Model, {}
    if model_type == "dinov2_with_registers":
        from transformers import Dinov2WithRegistersModel

        return Dinov2WithRegistersModel, {}
    if model_type == "vit":
        from transformers import ViTModel

        return ViTModel, {"add_pooling_layer": False}
    raise ModelError(
        f"unsupported ViT model type {model_type!r}; expected dinov2, dinov2_with_registers or vit"
    )


def _folder_config(path: Path, name: str, arch: ViTArch) -> Any:
    """The transformers config of a model folder, checked to be of ``name``'s family."""
    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model config in {path} for {name}: {exc}") from exc
    allowed = MODEL_TYPES[arch.family]
    if hf_config.model_type not in allowed:
        raise ModelError(
            f"{path} holds a {hf_config.model_type} model, not {name} (model type "
            f"{' or '.join(allowed)}); give {name}'s weights or name the matching backbone"
        )
    return hf_config


def _names(keys: list[str], limit: int = 12) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _file_as_folder(path: Path, arch: ViTArch, folder: Path) -> Path:
    """A model folder for a single weights file: the architecture's config beside the file
    (a .pt/.pth state dict is read safely and rewritten as safetensors)."""
    arch.hf_config().save_pretrained(folder)
    target = folder / "model.safetensors"
    if path.suffix == ".safetensors":
        target.symlink_to(path.resolve())
    else:
        from safetensors.torch import save_file

        state = load_state_dict(path)
        save_file({k: v.contiguous() for k, v in state.items()}, str(target))
    return folder


def load_model(path: Path, name: str, arch: ViTArch) -> torch.nn.Module:
    """The model at ``path`` (a Hugging Face model folder or a single weights file), strictly.

    One path for both: transformers' ``from_pretrained`` (which maps the checkpoint's key names to
    the model's, and takes a base model out of a checkpoint with a head) on the folder, or on a
    folder made of the file and ``arch``'s config. A pooler in the checkpoint is ignored (the
    backbone has none); any other missing or unexpected key is an error.

    Raises:
        ModelError: unreadable or truncated weights, a folder of another model family, or keys
            that are missing, unexpected or of another shape (the message names them).
    """
    fix = (
        f"give the transformers weights of {name} (a Hugging Face folder, or its model.safetensors)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = path if path.is_dir() else _file_as_folder(path, arch, Path(tmp))
        hf_config = _folder_config(folder, name, arch)
        model_cls, kwargs = _model_class(hf_config.model_type)
        try:
            model, info = model_cls.from_pretrained(str(folder), output_loading_info=True, **kwargs)
        except Exception as exc:  # transformers, safetensors and torch errors of a bad file
            detail = " ".join(str(exc).split()) or type(exc).__name__
            if "mismatched_sizes" in detail:
                raise ModelError(
                    f"{path} does not fit the {name} architecture (tensors of another shape, "
                    f"see the load report above); {fix}"
                ) from exc
            raise ModelError(
                f"cannot read weights of {name} from {path} ({type(exc).__name__}: {detail}); {fix}"
            ) from exc
    missing = sorted(info["missing_keys"])
    unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith("pooler."))
    problems = [f"{what} keys {_names(keys)}" for what, keys in
                (("missing", missing), ("unexpected", unexpected)) if keys]  # fmt: skip
    if problems:
        raise ModelError(
            f"{path} does not fit the {name} architecture: {'; '.join(problems)}; {fix}"
        )
    return model


class ViTBackbone:
    """DINO / DINOv2 patch features behind the ``Backbone`` protocol.

    Build with ``ViTBackbone.from_pretrained(name, config)`` (weights through
    ``pipeline.models.weights``) or ``ViTBackbone.from_hf_config(name, hf_config, config)``
    (random weights, for tests and cost benchmarks).
    """

    def __init__(self, name: str, model: torch.nn.Module, config: BackboneConfig) -> None:
        self.name = name
        self.config = config
        self.model_type = str(model.config.model_type)
        self.stride = int(model.config.patch_size)
        self.channels = int(model.config.hidden_size)
        self.device = resolve_device(config.device)
        self.dtype = inference_dtype(self.device, config.half)
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_hf_config(cls, name: str, hf_config: Any, config: BackboneConfig) -> ViTBackbone:
        """A randomly initialised backbone from a transformers ``Dinov2Config`` or ``ViTConfig``."""
        model_cls, kwargs = _model_class(hf_config.model_type)
        return cls(name, model_cls(hf_config, **kwargs), config)

    @classmethod
    def from_pretrained(cls, name: str, config: BackboneConfig) -> ViTBackbone:
        """The released weights of ``name`` (see ``ARCHITECTURES``), resolved by weights.py.

        Raises:
            ModelError: unknown name, or weights not available (the message says how to get them).
        """
        if name not in ARCHITECTURES:
            raise ModelError(
                f"unknown ViT backbone {name!r}; known: {', '.join(sorted(ARCHITECTURES))}"
            )
        arch = ARCHITECTURES[name]
        path = resolve_hf_model(name, weights=config.weights, cache_dir=config.cache_dir)
        return cls(name, load_model(path, name, arch), config)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Model input size (H_in, W_in) for a frame of (height, width): the short side is
        ``short_side`` rounded to the nearest multiple of the patch size, the long side follows
        the aspect ratio (rounded to a multiple too), capped at ``max_long_side``."""
        short = max(1, round(self.config.short_side / self.stride)) * self.stride
        return input_size_for(height, width, short, self.config.max_long_side, self.stride)

    def features(self, images: Sequence[np.ndarray]) -> list[FeatureMap]:
        """Patch features for HxWx3 uint8 RGB images; same-input-size images share a batch."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(
                    f"image {i} must be HxWx3 uint8 RGB, got shape {img.shape} dtype {img.dtype}"
                )
            groups.setdefault(self.input_size(*img.shape[:2]), []).append(i)
        out: dict[int, FeatureMap] = {}
        batch = self.config.batch_size
        for size, idx in groups.items():
            for s in range(0, len(idx), batch):
                chunk = idx[s : s + batch]
                maps = self._run([images[i] for i in chunk], size)
                out.update(zip(chunk, maps, strict=True))
        return [out[i] for i in range(len(images))]

    def _prepare(self, images: list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
        tensors = []
        for img in images:  # sizes may differ inside a group that maps to one input size
            x = torch.from_numpy(np.ascontiguousarray(img)).to(self.device)
            x = x.permute(2, 0, 1).unsqueeze(0).float() / 255.0
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            tensors.append(x)
        x = (torch.cat(tensors) - self._mean) / self._std
        return x.to(self.dtype)

    @torch.inference_mode()
    def _run(self, images: list[np.ndarray], size: tuple[int, int]) -> list[FeatureMap]:
        x = self._prepare(images, size)
        kwargs = {"interpolate_pos_encoding": True} if self.model_type == "vit" else {}
        tokens = self.model(pixel_values=x, **kwargs).last_hidden_state.float()
        h, w = size[0] // self.stride, size[1] // self.stride
        prefix = tokens.shape[1] - h * w
        grid = F.normalize(tokens[:, prefix:], dim=-1).reshape(len(images), h, w, -1)
        gvec = F.normalize(tokens[:, 0], dim=-1)
        grid_np, gvec_np = grid.cpu().numpy(), gvec.cpu().numpy()
        return [
            FeatureMap(
                grid=grid_np[b],
                stride=self.stride,
                global_vec=gvec_np[b],
                input_size=size,
                image_size=(int(img.shape[0]), int(img.shape[1])),
                backbone=self.name,
            )
            for b, img in enumerate(images)
        ]
