"""Weight resolution: safe loading, SAM checkpoint cache and sha256, offline errors."""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

import pytest
import torch

from pipeline.models.base import ModelError
from pipeline.models.config import SegmenterConfig
from pipeline.models.device import resolve_device
from pipeline.models.registry import build_segmenter
from pipeline.models.weights import (
    SAM_CHECKPOINTS,
    hf_repo,
    load_state_dict,
    pull,
    resolve_sam_checkpoint,
    sha256_file,
    weights_available,
)


def test_load_state_dict_safetensors_and_torch(tmp_path):
    from safetensors.torch import save_file

    state = {"a.weight": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"model": state}, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        loaded = load_state_dict(tmp_path / name)
        assert set(loaded) == set(state)
        assert torch.equal(loaded["a.weight"], state["a.weight"])


def test_load_state_dict_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": PurePosixPath("x")}, path)  # an arbitrary class: refused by weights_only
    with pytest.raises(ModelError, match="cannot read weights"):
        load_state_dict(path)


def test_sha256_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"dinotrack" * 1000)
    assert sha256_file(path, chunk_size=100) == hashlib.sha256(b"dinotrack" * 1000).hexdigest()


def test_sam_checkpoint_missing_without_download(tmp_path):
    with pytest.raises(ModelError) as info:
        resolve_sam_checkpoint("sam-vit_b", cache_dir=tmp_path, allow_download=False)
    assert "dinotrack models pull sam-vit_b" in str(info.value)
    assert "--segmenter none" in str(info.value)


def test_sam_checkpoint_offline_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="dinotrack models pull sam-vit_l"):
        build_segmenter("sam-vit_l", SegmenterConfig(cache_dir=tmp_path))


def test_sam_cached_checkpoint_hash_is_checked(tmp_path):
    spec = SAM_CHECKPOINTS["vit_b"]
    (tmp_path / spec.filename).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="does not match the official sha256"):
        resolve_sam_checkpoint("vit_b", cache_dir=tmp_path)
    # a verified record lets a cached file through without re-hashing
    (tmp_path / (spec.filename + ".sha256")).write_text(spec.sha256 + "\n")
    assert resolve_sam_checkpoint("vit_b", cache_dir=tmp_path) == tmp_path / spec.filename


def test_sam_explicit_checkpoint(tmp_path):
    path = tmp_path / "mine.pth"
    path.write_bytes(b"x")
    assert resolve_sam_checkpoint("sam-vit_h", checkpoint=path) == path
    with pytest.raises(ModelError, match="does not exist"):
        resolve_sam_checkpoint("sam-vit_h", checkpoint=tmp_path / "missing.pth")


def test_unknown_names():
    with pytest.raises(ModelError, match="known: sam-vit_b, sam-vit_l, sam-vit_h"):
        resolve_sam_checkpoint("sam-vit_x")
    with pytest.raises(ModelError, match="known Hugging Face models"):
        hf_repo("dinov3")
    with pytest.raises(ModelError, match="unknown segmenter 'sam2'"):
        build_segmenter("sam2", SegmenterConfig())
    assert hf_repo("owlv2-base") == "google/owlv2-base-patch16-ensemble"


def test_availability_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights_available("mobilenetv2-imagenet")
    assert not weights_available("dinov2-small", cache_dir=tmp_path)
    assert not weights_available("sam-vit_b", cache_dir=tmp_path)
    assert pull("mobilenetv2-imagenet").is_file()
    with pytest.raises(ModelError, match="dinotrack models pull dino-vitb16"):
        pull("dino-vitb16", cache_dir=tmp_path)


def test_mobilenet_rejected_pickle_is_a_model_error(tmp_path):
    from pipeline.models.config import BackboneConfig
    from pipeline.models.mobilenet import MobileNetV2Backbone

    path = tmp_path / "evil.pt"
    torch.save({"w": PurePosixPath("x")}, path)
    with pytest.raises(ModelError, match="cannot read weights"):
        MobileNetV2Backbone(BackboneConfig(name="mobilenetv2-imagenet", weights=path, device="cpu"))


def test_mobilenet_device_choice_is_the_shared_policy(monkeypatch):
    from pipeline.models.config import BackboneConfig
    from pipeline.models.mobilenet import MobileNetV2Backbone

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="CUDA is not available"):
        MobileNetV2Backbone(BackboneConfig(name="mobilenetv2-imagenet", device="cuda"))
    backbone = MobileNetV2Backbone(BackboneConfig(name="mobilenetv2-imagenet", device="auto"))
    assert backbone.device == resolve_device("auto")
