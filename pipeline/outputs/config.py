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
    """Frames written per round trip."""
    buffer: int = 2_000
    """Frames held while Redis refuses writes (unreachable, or full); when it is full the run
    waits for Redis, up to ``give_up_s``."""
    replay: int = 2_000
    """Frames kept after they are stored, to publish again if Redis loses them (a restart without
    persistence)."""
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    give_up_s: float = 60.0
    """How long writes are retried with a full buffer (or at the end) before the run fails."""
