"""Structured logs: JSON lines off a terminal, text on one, source and frame fields."""

from __future__ import annotations

import io
import json
import logging

import pytest

from workers.logs import get_logger, setup_logging, source_logger


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore():
    logger = logging.getLogger("dinotrack")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def test_json_lines_when_not_a_terminal_with_source_and_frame_fields():
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    log = source_logger("cam1")
    log.info("frame %d done", 12, extra={"frame_index": 12})
    log.debug("hidden")
    get_logger("http").warning("plain")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["message"] == "frame 12 done"
    assert (lines[0]["source_id"], lines[0]["frame_index"]) == ("cam1", 12)
    assert (lines[0]["level"], lines[0]["logger"]) == ("INFO", "dinotrack.worker")
    assert lines[0]["time"].endswith("Z")
    assert lines[1]["logger"] == "dinotrack.http" and "source_id" not in lines[1]


def test_text_on_a_terminal_and_setup_is_idempotent():
    stream = _Tty()
    setup_logging("debug", stream=stream)
    setup_logging("debug", stream=stream)
    source_logger("cam2", "tracker").debug("hello", extra={"frame_index": 3})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("dinotrack.worker").exception("failed")
    text = stream.getvalue().splitlines()
    assert text[0].endswith("DEBUG dinotrack.tracker [cam2#3] hello")
    assert "ERROR dinotrack.worker failed" in text[1]
    assert "RuntimeError: boom" in stream.getvalue()
    assert stream.getvalue().count("hello") == 1


def test_forced_json_and_bad_level():
    stream = _Tty()
    setup_logging(logging.WARNING, json=True, stream=stream)
    get_logger("x").warning("w")
    assert json.loads(stream.getvalue())["message"] == "w"
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging("LOUD", stream=stream)
