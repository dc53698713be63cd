"""Opening video files: decord first, PyAV when decord cannot open the file or gets it wrong."""

from __future__ import annotations

import logging

from pipeline.sources.base import SourceError
from pipeline.sources.config import SourceConfig
from pipeline.sources.container import scan_container
from pipeline.sources.decord_file import DecordFileSource, ReaderUnfit
from pipeline.sources.events import EventSink
from pipeline.sources.pyav_file import PyAVFileSource

log = logging.getLogger("dinotrack.sources")


def open_file(
    uri: str, source_id: str, config: SourceConfig, events: EventSink
) -> DecordFileSource | PyAVFileSource:
    """Open a video file with the reader ``config.reader`` asks for.

    With ``reader="auto"`` decord reads the file unless the stream has a variable frame rate, the
    packet scan stopped early (truncated file), or decord cannot open it or disagrees with the
    container on frame count or timestamps; then PyAV reads it. The choice is logged on
    ``dinotrack.sources``.

    Raises:
        SourceError: The file is missing, empty, not a video, has no frames, uses an unsupported
            codec, or is larger than ``max_pixels`` allows even after downscaling.
    """
    try:
        scan = scan_container(uri)
    except SourceError as exc:
        raise events.error(str(exc)) from exc
    try:
        if config.reader == "pyav":
            return PyAVFileSource(scan, source_id, config, events)
        reason = None
        if config.reader == "auto" and scan.vfr:
            reason = "variable frame rate"
        elif config.reader == "auto" and scan.truncated:
            reason = "the file is cut short"
        if reason is None:
            try:
                source = DecordFileSource(scan, source_id, config, events)
                log.info("%r: reading with decord (%s)", uri, scan.codec)
                return source
            except ReaderUnfit as exc:
                if config.reader == "decord":
                    raise events.error(
                        f"{uri!r} cannot be read with decord: {exc} — use reader='pyav' or 'auto'"
                    ) from exc
                reason = str(exc)
        log.info("%r: reading with PyAV instead of decord: %s", uri, reason)
        return PyAVFileSource(scan, source_id, config, events)
    except ValueError as exc:
        raise events.error(f"{uri!r}: {exc}") from exc
