"""Turning failures into one-line messages for the CLI and job states."""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user (bad input, unreachable services)."""
    from pipeline.models.base import ModelError
    from pipeline.outputs.redis_streams import RedisUnavailable
    from pipeline.prompts import PromptError
    from pipeline.settings import SettingsError
    from pipeline.sources.base import SourceError
    from pipeline.wire import WireError
    from workers.ray_cluster import RayStartError

    return (
        ModelError,
        PromptError,
        RedisUnavailable,
        SettingsError,
        SourceError,
        WireError,
        RayStartError,
        FileNotFoundError,
        ValueError,
    )
