"""Interfaces every backbone and segmenter implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.types import FeatureMap


class ModelError(RuntimeError):
    """A model that cannot be built or loaded; the message names the model and the fix."""


@runtime_checkable
class Backbone(Protocol):
    """Turns frames into L2-normalised patch-feature grids."""

    name: str
    stride: int

    def features(self, images: Sequence[np.ndarray]) -> list[FeatureMap]:
        """Patch features for a batch of HxWx3 uint8 RGB images (sizes may differ)."""
        ...


@dataclass
class MaskRequest:
    """What to segment for one object of one frame (any combination of the fields).

    points: (N, 2) xy pixel indices of the original frame (x = column, y = row; a point is that
    pixel's centre); point_labels: (N,) 1 = object, 0 = background; box: (x0, y0, x1, y1) pixel
    edges, x1 and y1 exclusive (``pipeline.masks.mask_to_box``); mask_input: (H, W) bool or float
    prior (e.g. a propagated mask).
    """

    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    mask_input: np.ndarray | None = None


@dataclass
class MaskProposal:
    """A segmenter's answer for one request: (H, W) bool mask and its predicted quality (0-1)."""

    mask: np.ndarray
    score: float


@runtime_checkable
class Segmenter(Protocol):
    """Turns prompts into masks. All requests of one frame share one image embedding."""

    name: str

    def segment(
        self, image: np.ndarray, features: FeatureMap, requests: Sequence[MaskRequest]
    ) -> list[MaskProposal]: ...
