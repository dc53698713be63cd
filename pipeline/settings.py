"""One typed settings object: defaults < a file (YAML, JSON, TOML) < ``DINOTRACK_*`` env < CLI.

Nested fields use ``__`` in the environment: ``DINOTRACK_BACKBONE__NAME=dinov2-small``,
``DINOTRACK_TRACKER__PROPAGATION__TOPK=5``. ``dinotrack config`` prints the effective values.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from pipeline.models.config import BackboneConfig, SegmenterConfig
from pipeline.outputs.config import PublishConfig
from pipeline.sources.config import SourceConfig
from pipeline.tracking.config import TrackerConfig

_CONFIG_FILE: ContextVar[Path | None] = ContextVar("dinotrack_config_file", default=None)


class RayConfig(BaseModel):
    """Where and how the Ray actors run."""

    address: str | None = None
    """Cluster address (``auto`` to join a running cluster); None starts a local Ray."""
    num_cpus: int | None = None
    """CPUs a local Ray advertises (None: all). Actors declare fractional CPUs so none waits."""
    max_in_flight: int = 8
    """Frames of one source between decode and publish at once (backpressure)."""
    include_dashboard: bool = False
    model_gpus: float | None = None
    """GPU share of each model actor (backbone, SAM); None: 0.5 where Ray sees GPUs, else 0."""


class WorkerConfig(BaseModel):
    """What a ``dinotrack worker`` serves and what its queued jobs may read."""

    model_config = ConfigDict(extra="forbid")

    metrics_host: str = "127.0.0.1"
    """Address the Prometheus endpoint listens on (``--metrics-host``; 0.0.0.0: every interface)."""
    allowed_roots: list[Path] | None = None
    """Folders (or files) that sources and prompt files of queued jobs may be in; None: the
    worker's current folder; ``[]``: none (live URLs only). `dinotrack run` is not confined."""
    allowed_schemes: list[str] = Field(
        default_factory=lambda: ["rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp"]
    )
    """URL schemes a queued job's source may use (``file``, ``concat`` ... are never needed)."""


class Settings(BaseSettings):
    """Everything a run, a worker or a consumer can be told."""

    model_config = SettingsConfigDict(
        env_prefix="DINOTRACK_", env_nested_delimiter="__", extra="forbid"
    )

    redis_url: str | None = None
    """Redis URL (redis://, rediss://, unix://; user and password in the URL). None: embedded."""
    data_dir: Path = Path(".dinotrack")
    """Folder of the embedded Redis's data and of model caches."""
    segmenter: str = "none"
    """``none`` (masks from the features) or ``sam-vit_b|vit_l|vit_h`` (SAM on keyframes)."""
    source: SourceConfig = Field(default_factory=SourceConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    sam: SegmenterConfig = Field(default_factory=SegmenterConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    debug: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get()
        if path is not None:
            if path.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            else:  # YAML is a superset of JSON
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


class SettingsError(ValueError):
    """A settings file or value that cannot be used."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, ``config_file``, the environment and ``overrides`` (highest).

    ``overrides`` are nested dicts for nested fields (``backbone={"name": "dinov2-small"}``);
    entries whose value is None are ignored, so unset CLI flags keep lower layers' values.
    """
    if config_file is not None and not Path(config_file).is_file():
        raise SettingsError(f"settings file '{config_file}' not found — check the --config path")
    token = _CONFIG_FILE.set(Path(config_file) if config_file else None)
    try:
        return Settings(**drop_none(overrides))
    finally:
        _CONFIG_FILE.reset(token)


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = drop_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out
