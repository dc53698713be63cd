"""Settings of the outputs (imports only pydantic: control commands read them without the
Redis client or the models)."""

from __future__ import annotations

from pydantic import BaseModel


class PublishConfig(BaseModel):
    """How results are written to Redis."""

    maxlen: int | None = 100_000
    """Approximate bound on entries kept per frames stream (None: unbounded)."""
    events_maxlen: int = 10_000
    batch: int = 16
    """Frames written per pipelined round trip."""
    buffer: int = 2_000
    """Frames held while Redis is unreachable; beyond it the oldest are dropped (counted)."""
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
