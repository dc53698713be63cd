"""Structured logs: JSON lines for machines, short text lines for people.

`setup_logging` configures the ``dinotrack`` logger (all of dinotrack's loggers are named
``dinotrack.<area>``). With ``json=None`` the format follows stderr: JSON lines when it is not a
terminal (containers, log shippers), human text when it is. ``source_id`` and ``frame_index``
given through ``extra=`` become fields; `source_logger` adds ``source_id`` to every record.

A JSON line::

    {"time": "2025-01-01T12:00:00.123Z", "level": "INFO", "logger": "dinotrack.worker",
     "message": "source started", "source_id": "cam1", "frame_index": 12}
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import IO, Any

from pipeline.redact import redact

ROOT = "dinotrack"
FIELDS = ("source_id", "frame_index")
"""Record attributes that become top-level fields (and the ``[source#frame]`` text prefix)."""

_HANDLER_NAME = "dinotrack-stderr"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return jsonlib.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """``12:00:00 INFO  dinotrack.worker [cam1#12] message``."""

    def format(self, record: logging.LogRecord) -> str:
        source = getattr(record, "source_id", None)
        frame = getattr(record, "frame_index", None)
        where = ""
        if source is not None:
            where = f" [{source}" + (f"#{frame}" if frame is not None else "") + "]"
        elif frame is not None:
            where = f" [#{frame}]"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname:<5} {record.name}{where} {redact(record.getMessage())}"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level '{level}' — use DEBUG, INFO, WARNING, ERROR")
    return value


def setup_logging(
    level: int | str = "INFO", json: bool | None = None, stream: IO[str] | None = None
) -> logging.Logger:
    """Configure the ``dinotrack`` logger to write to ``stream`` (stderr); idempotent.

    Args:
        level: A level name (``DEBUG``, ``INFO``, ...) or number.
        json: JSON lines (True), text (False), or None: JSON when ``stream`` is not a terminal.
        stream: Where to write (default: ``sys.stderr`` at the time of the call).

    Returns:
        The ``dinotrack`` logger.

    Raises:
        ValueError: ``level`` is not a logging level.
    """
    stream = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(_level(level))
    logger.propagate = False
    return logger


def get_logger(area: str) -> logging.Logger:
    """The logger ``dinotrack.<area>`` (``area`` may already start with ``dinotrack.``)."""
    name = area if area == ROOT or area.startswith(ROOT + ".") else f"{ROOT}.{area}"
    return logging.getLogger(name)


class SourceLogger(logging.LoggerAdapter):
    """Adds ``source_id`` to every record; a call's own ``extra`` (e.g. ``frame_index``) is kept."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def source_logger(source_id: str, area: str = "worker") -> SourceLogger:
    """A logger for one source.

    Example: ``source_logger("cam1").info("frame done", extra={"frame_index": 3})``.
    """
    return SourceLogger(get_logger(area), {"source_id": source_id})
