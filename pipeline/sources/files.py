"""Opening video files: PyAV by default, decord on request."""

from __future__ import annotations

import logging

from pipeline.sources.base import SourceError
from pipeline.sources.config import SourceConfig
from pipeline.sources.container import ContainerScan, scan_container
from pipeline.sources.decord_file import DecordFileSource, ReaderUnfit
from pipeline.sources.events import EventSink
from pipeline.sources.pyav_file import PyAVFileSource

log = logging.getLogger("dinotrack.sources")


def open_file(
    uri: str, source_id: str, config: SourceConfig, events: EventSink
) -> DecordFileSource | PyAVFileSource:
    """Open a video file with the reader ``config.reader`` asks for.

    Every file is opened with PyAV first (packet scan, first frame decoded). ``reader="auto"`` and
    ``"pyav"`` carry on decoding with that PyAV decoder; ``"decord"`` hands the file to decord,
    which refuses files whose frame count, timestamps or display rotation it gets wrong. The
    choice is logged on ``dinotrack.sources``.

    Raises:
        SourceError: The file is missing, empty, not a video, has no frames, uses an unsupported
            codec, is larger than ``max_pixels`` allows even after downscaling, or (reader
            ``"decord"``) cannot be read with decord.
    """
    try:
        scan, decoding = scan_container(uri, config.decode_threads)
    except SourceError as exc:
        raise events.error(str(exc)) from exc
    source: DecordFileSource | PyAVFileSource
    try:
        if config.reader == "decord":
            decoding.close()  # decord opens the file itself
            source = DecordFileSource(scan, source_id, config, events)
        else:
            source = PyAVFileSource(scan, decoding, source_id, config, events)
    except ReaderUnfit as exc:
        raise events.error(
            f"{uri!r} cannot be read with decord: {exc} — use reader='pyav' or 'auto'"
        ) from exc
    except ValueError as exc:
        decoding.close()  # closing twice is harmless
        raise events.error(f"{uri!r}: {exc}") from exc
    log.info("%r: reading with %s (%s)", uri, source.reader, describe(scan))
    return source


def describe(scan: ContainerScan) -> str:
    """What the log line says of a file: codec, frames, and what is unusual about it."""
    notes = [scan.codec, f"{scan.frames} frames"]
    if scan.vfr:
        notes.append("variable frame rate")
    if scan.rotation:
        notes.append(f"display rotation {scan.rotation} degrees")
    if scan.truncated:
        notes.append("the file is cut short")
    return ", ".join(notes)
