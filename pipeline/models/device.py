"""Device choice and precision policy shared by every model."""

from __future__ import annotations

import torch

from pipeline.models.base import ModelError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; any other name is checked to be usable.

    Raises:
        ModelError: the device does not exist or is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"device {name!r} requested but MPS is not available; use --device cpu")
    return device


def inference_dtype(device: torch.device, half: bool) -> torch.dtype:
    """float16 when half precision is asked for on a GPU, float32 otherwise (never half on CPU)."""
    if half and device.type in ("cuda", "mps"):
        return torch.float16
    return torch.float32
