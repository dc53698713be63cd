"""ViT backbones (tiny random DINOv2 / DINO configs), the registry and ``auto``."""

from __future__ import annotations

from pathlib import Path

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
    name, note = resolve_backbone_name(BackboneConfig(cache_dir=Path("/nonexistent")))
    assert name == "mobilenetv2-imagenet"
    assert note is not None and "dinotrack models pull dinov2-small" in note
    assert "/nonexistent" in note and "\n" not in note
    assert resolve_backbone_name(BackboneConfig(name="dino-vits16")) == ("dino-vits16", None)


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


def _save_folder(model, folder, drop: tuple[str, ...] = ()) -> None:
    """A Hugging Face model folder (config.json + model.safetensors) without the keys ``drop``."""
    from safetensors.torch import save_file

    model.config.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith(drop)}
    save_file(state, str(folder / "model.safetensors"))


def test_folder_with_missing_keys_is_refused_with_their_names(tmp_path, tiny_dinov2_config):
    from transformers import Dinov2Model

    torch.manual_seed(0)
    _save_folder(
        Dinov2Model(tiny_dinov2_config), tmp_path, drop=("layernorm.", "encoder.layer.1.mlp.")
    )
    with pytest.raises(ModelError) as info:
        build_backbone(BackboneConfig(name="dinov2-small", weights=tmp_path, device="cpu"))
    message = str(info.value)
    assert "missing keys" in message and "\n" not in message
    for key in ("layernorm.weight", "layernorm.bias", "encoder.layer.1.mlp.fc1.weight"):
        assert key in message


def test_folder_with_unexpected_keys_is_refused(tmp_path, tiny_dinov2_config):
    from safetensors.torch import load_file, save_file
    from transformers import Dinov2Model

    _save_folder(Dinov2Model(tiny_dinov2_config), tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    save_file({**state, "extra.weight": torch.ones(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelError, match="unexpected keys extra.weight"):
        build_backbone(BackboneConfig(name="dinov2-small", weights=tmp_path, device="cpu"))


def test_truncated_safetensors_is_a_model_error(tmp_path, tiny_dinov2_config):
    from transformers import Dinov2Model

    _save_folder(Dinov2Model(tiny_dinov2_config), tmp_path)
    blob = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    for weights in (tmp_path, tmp_path / "model.safetensors"):
        with pytest.raises(ModelError, match="cannot read weights"):
            build_backbone(BackboneConfig(name="dinov2-small", weights=weights, device="cpu"))


def test_registers_folder_runs_dinov2_with_registers(tmp_path):
    """A DINOv2-with-registers folder runs its own model: features equal to calling it directly."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    hf_config = Dinov2WithRegistersConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
        image_size=56, num_register_tokens=4,
    )  # fmt: skip
    torch.manual_seed(0)
    reference = Dinov2WithRegistersModel(hf_config).eval()
    _save_folder(reference, tmp_path)
    config = BackboneConfig(name="dinov2-small", weights=tmp_path, device="cpu", short_side=56)
    backbone = build_backbone(config)
    assert type(backbone.model).__name__ == "Dinov2WithRegistersModel"
    image = _images()[0]  # 100x150 -> 56x84 input: 4x6 patches after CLS and 4 registers
    fm = backbone.features([image])[0]
    with torch.inference_mode():
        tokens = reference(pixel_values=backbone._prepare([image], fm.input_size)).last_hidden_state
    assert tokens.shape[1] == 1 + 4 + 4 * 6
    want = torch.nn.functional.normalize(tokens[0, 5:], dim=-1).reshape(4, 6, 32)
    np.testing.assert_array_equal(fm.grid, want.numpy())
    np.testing.assert_array_equal(
        fm.global_vec, torch.nn.functional.normalize(tokens[0, 0], dim=-1).numpy()
    )


def test_folder_of_another_family_is_refused(tmp_path, tiny_vit_config):
    from transformers import ViTModel

    _save_folder(ViTModel(tiny_vit_config, add_pooling_layer=False), tmp_path)
    with pytest.raises(ModelError, match="holds a vit model, not dinov2-small"):
        build_backbone(BackboneConfig(name="dinov2-small", weights=tmp_path, device="cpu"))


def _save_in_hf_cache(model, cache: Path, repo: str) -> None:
    folder = cache / f"models--{repo.replace('/', '--')}"
    model.save_pretrained(folder / "snapshots" / "abc123")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")


def test_auto_picks_dinov2_small_in_the_configured_cache(tmp_path, monkeypatch, tiny_dinov2_config):
    from transformers import Dinov2Model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _save_in_hf_cache(Dinov2Model(tiny_dinov2_config), tmp_path, "facebook/dinov2-small")
    config = BackboneConfig(name="auto", cache_dir=tmp_path, device="cpu", short_side=56)
    name, note = resolve_backbone_name(config)
    assert name == "dinov2-small" and note is not None and str(tmp_path) in note
    assert build_backbone(config).name == "dinov2-small"
    # an explicit weights folder is dinov2-small's too
    folder = tmp_path / "mine"
    Dinov2Model(tiny_dinov2_config).save_pretrained(folder)
    explicit = BackboneConfig(name="auto", weights=folder, device="cpu", short_side=56)
    assert resolve_backbone_name(explicit)[0] == "dinov2-small"
    assert build_backbone(explicit).features([_images()[1]])[0].backbone == "dinov2-small"
