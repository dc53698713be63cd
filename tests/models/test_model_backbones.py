"""ViT backbones (tiny random DINOv2 / DINO configs), the registry and ``auto``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.models.base import Backbone, ModelError
from pipeline.models.config import BackboneConfig
from pipeline.models.device import inference_dtype, resolve_device
from pipeline.models.registry import BACKBONES, build_backbone, resolve_backbone_name
from pipeline.models.vit import ViTBackbone
from pipeline.types import FeatureMap


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [(100, 150), (60, 60), (100, 150), (101, 151)]
    return [rng.integers(0, 256, size=(*s, 3), dtype=np.uint8) for s in sizes]


def _check(fm: FeatureMap, image: np.ndarray, stride: int, channels: int, name: str) -> None:
    h_in, w_in = fm.input_size
    assert h_in % stride == 0 and w_in % stride == 0
    assert fm.grid.shape == (h_in // stride, w_in // stride, channels)
    assert fm.grid.dtype == np.float32 and fm.stride == stride
    np.testing.assert_allclose(np.linalg.norm(fm.grid, axis=-1), 1.0, atol=1e-5)
    assert fm.global_vec.shape == (channels,)
    assert np.linalg.norm(fm.global_vec) == pytest.approx(1.0, abs=1e-5)
    assert fm.image_size == image.shape[:2] and fm.backbone == name


@pytest.mark.parametrize("family", ["dinov2", "dino"])
def test_vit_features_shapes_norm_and_batching(family, tiny_dinov2_config, tiny_vit_config):
    torch.manual_seed(0)
    hf_config = tiny_dinov2_config if family == "dinov2" else tiny_vit_config
    config = BackboneConfig(short_side=60, max_long_side=200, device="cpu", batch_size=2)
    backbone = ViTBackbone.from_hf_config(f"tiny-{family}", hf_config, config)
    assert isinstance(backbone, Backbone)
    stride = hf_config.patch_size
    assert backbone.stride == stride
    images = _images()
    maps = backbone.features(images)
    assert len(maps) == len(images)
    for fm, img in zip(maps, images, strict=True):
        _check(fm, img, stride, 32, f"tiny-{family}")
    # short side 60 rounds to the nearest multiple of the patch size, aspect kept
    short = round(60 / stride) * stride
    assert maps[1].input_size == (short, short)
    assert maps[0].input_size[0] == short
    assert maps[0].input_size[1] == round(150 * short / 100 / stride) * stride
    # a frame's features do not depend on the batch it was computed in
    alone = backbone.features([images[2]])[0]
    np.testing.assert_allclose(alone.grid, maps[2].grid, atol=1e-5)
    np.testing.assert_allclose(alone.global_vec, maps[2].global_vec, atol=1e-5)
    assert not np.allclose(maps[0].grid, maps[2].grid)  # different images, different features


def test_long_side_cap(tiny_dinov2_config):
    config = BackboneConfig(short_side=112, max_long_side=168, device="cpu")
    backbone = ViTBackbone.from_hf_config("tiny", tiny_dinov2_config, config)
    assert backbone.input_size(100, 400) == (42, 168)


def test_bad_image_is_rejected(tiny_dinov2_config):
    backbone = ViTBackbone.from_hf_config("tiny", tiny_dinov2_config, BackboneConfig(device="cpu"))
    with pytest.raises(ValueError, match="image 0 must be HxWx3 uint8"):
        backbone.features([np.zeros((20, 20), np.uint8)])


def test_local_model_folder_loads_same_weights(tmp_path, tiny_dinov2_config):
    torch.manual_seed(0)
    config = BackboneConfig(short_side=56, device="cpu")
    original = ViTBackbone.from_hf_config("dinov2-small", tiny_dinov2_config, config)
    original.model.save_pretrained(tmp_path / "model")
    loaded = ViTBackbone.from_pretrained(
        "dinov2-small", config.model_copy(update={"weights": tmp_path / "model"})
    )
    image = _images()[0]
    np.testing.assert_allclose(
        loaded.features([image])[0].grid, original.features([image])[0].grid, atol=1e-5
    )


def test_hf_cache_is_used(tmp_path, tiny_vit_config):
    """A model in the Hugging Face cache layout is found without any network access."""
    from pipeline.models.weights import weights_available

    snapshot = tmp_path / "models--facebook--dino-vits8" / "snapshots" / "abc123"
    torch.manual_seed(0)
    tiny = ViTBackbone.from_hf_config("x", tiny_vit_config, BackboneConfig(device="cpu"))
    tiny.model.save_pretrained(snapshot)
    (tmp_path / "models--facebook--dino-vits8" / "refs").mkdir()
    (tmp_path / "models--facebook--dino-vits8" / "refs" / "main").write_text("abc123")
    assert weights_available("dino-vits8", cache_dir=tmp_path)
    assert not weights_available("dino-vitb8", cache_dir=tmp_path)
    backbone = build_backbone(
        BackboneConfig(name="dino-vits8", cache_dir=tmp_path, device="cpu", short_side=64)
    )
    assert backbone.name == "dino-vits8" and backbone.stride == 8
    assert backbone.features([_images()[0]])[0].grid.shape[-1] == 32


def test_weights_file_of_wrong_architecture(tmp_path, tiny_vit_config):
    from safetensors.torch import save_file

    tiny = ViTBackbone.from_hf_config("x", tiny_vit_config, BackboneConfig(device="cpu"))
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(path))
    with pytest.raises(ModelError, match="does not fit the dino-vits16 architecture"):
        build_backbone(BackboneConfig(name="dino-vits16", weights=path, device="cpu"))


def test_missing_weights_path():
    with pytest.raises(ModelError, match="does not exist"):
        build_backbone(BackboneConfig(name="dinov2-small", weights="/nonexistent/dinov2"))


def test_offline_missing_weights_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        build_backbone(BackboneConfig(name="dinov2-base", cache_dir=tmp_path))
    message = str(info.value)
    assert "dinov2-base" in message
    assert "dinotrack models pull dinov2-base" in message
    assert "--backbone mobilenetv2-imagenet" in message


def test_unknown_backbone_lists_known_names():
    with pytest.raises(ModelError) as info:
        build_backbone(BackboneConfig(name="resnet50"))
    assert "resnet50" in str(info.value)
    for name in ("dinov2-small", "dino-vitb8", "mobilenetv2-imagenet", "auto"):
        assert name in str(info.value)


def test_auto_falls_back_to_mobilenet_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name, note = resolve_backbone_name("auto")
    assert name == "mobilenetv2-imagenet"
    assert note is not None and "dinotrack models pull dinov2-small" in note
    assert "\n" not in note
    assert resolve_backbone_name("dino-vits16") == ("dino-vits16", None)


def test_registry_builds_mobilenet(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = build_backbone(BackboneConfig(name="auto", device="cpu", short_side=64))
    assert backbone.name == "mobilenetv2-imagenet"
    assert backbone.stride == BACKBONES["mobilenetv2-imagenet"].stride
    fm = backbone.features([_images()[1]])[0]
    assert fm.grid.shape == (8, 8, BACKBONES["mobilenetv2-imagenet"].channels)


def test_registry_strides_match_architectures():
    from pipeline.models.vit import ARCHITECTURES

    for name, arch in ARCHITECTURES.items():
        assert BACKBONES[name].stride == arch.patch_size
        assert BACKBONES[name].channels == arch.hidden_size


def test_device_policy():
    assert resolve_device("cpu") == torch.device("cpu")
    assert inference_dtype(torch.device("cpu"), half=True) == torch.float32
    assert inference_dtype(torch.device("cuda"), half=True) == torch.float16
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu7")
