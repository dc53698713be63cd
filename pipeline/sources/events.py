"""Source events (connected, disconnected, reconnecting, eof, error) sent to a callback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pipeline.sources.base import SourceError
from pipeline.types import Event

log = logging.getLogger("dinotrack.sources")

EventCallback = Callable[[Event], None]


class EventSink:
    """Sends source events to ``on_event`` (if any) and the ``dinotrack.sources`` log.

    A callback that raises is logged and does not stop the source.
    """

    def __init__(self, source_id: str, on_event: EventCallback | None) -> None:
        self.source_id = source_id
        self.on_event = on_event

    def emit(
        self, kind: str, message: str | None = None, frame_index: int | None = None, **extra: Any
    ) -> None:
        """Log and send one event of ``kind`` (e.g. ``"source.eof"``)."""
        level = logging.WARNING if kind in ("source.error", "source.disconnected") else logging.INFO
        log.log(level, "%s %s: %s", self.source_id, kind, message or "")
        if self.on_event is None:
            return
        event = Event(
            kind=kind,
            source_id=self.source_id,
            wall_time=time.time(),
            frame_index=frame_index,
            message=message,
            extra=extra,
        )
        try:
            self.on_event(event)
        except Exception:
            log.exception("%s: the on_event callback failed on %s", self.source_id, kind)

    def error(self, message: str, frame_index: int | None = None) -> SourceError:
        """Emit ``source.error`` and return the `SourceError` to raise."""
        self.emit("source.error", message, frame_index=frame_index)
        return SourceError(message)
