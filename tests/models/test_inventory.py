"""`dinotrack models list`'s rows: every model kind, found / missing / verified / corrupt."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.models.config import BackboneConfig, SegmenterConfig
from pipeline.models.inventory import model_rows
from pipeline.models.weights import SAM_CHECKPOINTS


def _hub_download(cache: Path, repo: str, content: bytes, digest: str | None = None) -> None:
    """The Hugging Face cache layout of a download: a snapshot file linked to a blob whose name is
    the hub's sha256 of the file."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    blob = folder / "blobs" / (digest or hashlib.sha256(content).hexdigest())
    blob.parent.mkdir(parents=True)
    blob.write_bytes(content)
    snapshot = folder / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").symlink_to(blob)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")


def test_rows_cover_every_kind_with_their_state(tmp_path):
    cache, sam_cache = tmp_path / "hf", tmp_path / "sam"
    _hub_download(cache, "facebook/dinov2-small", b"weights")
    _hub_download(cache, "facebook/dino-vits8", b"truncated", digest="0" * 64)
    spec = SAM_CHECKPOINTS["vit_b"]
    sam_cache.mkdir()
    (sam_cache / spec.filename).write_bytes(b"x")
    (sam_cache / (spec.filename + ".sha256")).write_text(spec.sha256 + "\n")
    (sam_cache / SAM_CHECKPOINTS["vit_l"].filename).write_bytes(b"not the official file")
    mine = tmp_path / "mine"
    mine.mkdir()
    rows = model_rows(
        BackboneConfig(name="dino-vitb16", weights=mine, cache_dir=cache),
        "sam-vit_h",
        SegmenterConfig(cache_dir=sam_cache),
    )
    state = {(r.kind, r.name): r.status for r in rows}
    assert {kind for kind, _ in state} == {"backbone", "segmenter", "text detector"}
    assert state["backbone", "dinov2-small"] == "verified"
    assert state["backbone", "dino-vits8"] == "corrupt"
    assert state["backbone", "dino-vitb16"] == "found"  # an explicit folder: no known sha256
    assert state["backbone", "dinov2-base"] == "missing"
    assert state["backbone", "mobilenetv2-imagenet"] == "verified"
    assert state["segmenter", "none"] == "built-in"
    assert state["segmenter", "sam-vit_b"] == "verified"
    assert state["segmenter", "sam-vit_l"] == "corrupt"
    assert state["segmenter", "sam-vit_h"] == "missing"
    assert state["text detector", "owlv2-base"] == "missing"
    by_name = {r.name: r for r in rows}
    assert by_name["dinov2-small"].detail == f"sha256 {hashlib.sha256(b'weights').hexdigest()}"
    assert "dinotrack models pull owlv2-base" in by_name["owlv2-base"].detail
    unverified = model_rows(BackboneConfig(cache_dir=cache), verify=False)
    assert {r.name: r.status for r in unverified}["dino-vits8"] == "found"
