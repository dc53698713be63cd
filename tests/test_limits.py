"""Bounded input (#12.15, #12.16): sizes, depths and label lengths are refused before decoding."""

from __future__ import annotations

import io
import json
import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.limits import MAX_JOB_BYTES, MAX_JSON_DEPTH, MAX_LABEL_CHARS
from pipeline.prompts import PromptError, load_prompts_file
from pipeline.sources import SourceError, probe
from pipeline.wire import WireError, decode_job
from workers.cli import app


def _cli_error(args: list[str]) -> str:
    started = time.monotonic()
    result = CliRunner().invoke(app, args)
    assert time.monotonic() - started < 10
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    [error] = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    return error


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_rle_mask_declaring_100000x100000_is_refused_before_decoding(tmp_path: Path, square_clip):
    bomb = {"prompts": [{"kind": "mask", "rle": {"size": [100000, 100000], "counts": "0"}}]}
    path = tmp_path / "bomb.json"
    path.write_text(json.dumps(bomb))
    assert path.stat().st_size < 100
    before = _peak_rss_mb()
    with pytest.raises(PromptError, match="mask size 100000x100000 is outside"):
        load_prompts_file(path)
    assert _peak_rss_mb() - before < 200
    error = _cli_error(["run", str(square_clip[0]), "--prompts", str(path)])
    assert "100000x100000" in error and "prompt 0 (mask)" in error


def test_mask_png_whose_header_declares_a_huge_size_is_refused(tmp_path: Path, square_clip):
    path = _png_header(tmp_path / "huge.png", 10000, 10000)
    error = _cli_error(["run", str(square_clip[0]), "--mask", str(path)])
    assert "huge.png" in error and "10000x10000" in error


def _png_header(path: Path, width: int, height: int) -> Path:
    """A small PNG file whose header declares ``width`` x ``height`` (its data is cut short)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


def _jpeg_header(path: Path, width: int, height: int) -> Path:
    """A small JPEG whose SOF header is patched to declare ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_image_folder_frame_declaring_20000x20000_is_refused_before_decoding(
    tmp_path: Path, kind: str
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "00000.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "00002.png")
    maker = _png_header if kind == "png" else _jpeg_header
    maker(folder / f"00001.{'png' if kind == 'png' else 'jpg'}", 20000, 20000)
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10_000
    from pipeline.sources import open_source

    source = open_source(str(folder), "bomb")
    before = _peak_rss_mb()
    with pytest.raises(SourceError, match="20000x20000|exceeds limit") as info:
        list(source.frames())
    assert _peak_rss_mb() - before < 200
    assert "00001" in str(info.value) and "max_pixels" in str(info.value)
    # the first frame of the folder is checked when it is opened (probe)
    (folder / "00000.png").unlink()
    (folder / "00002.png").unlink()
    with pytest.raises(SourceError, match="20000x20000|exceeds limit"):
        probe(str(folder))
    error = _cli_error(["probe", str(folder)])
    assert "00001" in error


def test_a_5_mb_label_is_refused(tmp_path: Path, square_clip) -> None:
    path = tmp_path / "label.json"
    big = "x" * 5_000_000
    path.write_text(json.dumps({"prompts": [{"kind": "box", "box": [1, 1, 9, 9], "label": big}]}))
    with pytest.raises(PromptError, match=f"above the limit of {MAX_LABEL_CHARS}"):
        load_prompts_file(path)
    error = _cli_error(["run", str(square_clip[0]), "--prompts", str(path)])
    assert "5,000,000 characters" in error


def test_json_100000_levels_deep_is_a_clear_error_and_exit_2(tmp_path: Path, square_clip):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    error = _cli_error(["run", str(square_clip[0]), "--prompts", str(path)])
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error and "deep.json" in error
    shallow_but_too_deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    path.write_text(shallow_but_too_deep)
    with pytest.raises(PromptError, match="deeper than"):
        load_prompts_file(path)


def test_a_prompts_file_above_the_size_limit_is_refused_unread(tmp_path: Path, square_clip):
    path = tmp_path / "big.json"
    with path.open("wb") as f:
        f.truncate(17 * 1024 * 1024)  # sparse: nothing is written, nothing must be read
    error = _cli_error(["run", str(square_clip[0]), "--prompts", str(path)])
    assert "big.json" in error and "above the limit of 16,777,216" in error


def test_a_job_above_the_size_or_depth_limit_is_malformed() -> None:
    job = {"source": "a.mp4", "source_id": "a", "prompts": [], "pad": "x" * MAX_JOB_BYTES}
    with pytest.raises(WireError, match="above the limit"):
        decode_job({"schema": "1.0", "data": json.dumps(job)})
    deep = '{"source": "a.mp4", "source_id": "a", "settings": ' + "[" * 50_000 + "]" * 50_000 + "}"
    with pytest.raises(WireError, match="deeper than"):
        decode_job({"schema": "1.0", "data": deep})
    ok = decode_job({"schema": "1.0", "data": json.dumps({"source": "a.mp4", "source_id": "a"})})
    assert ok.source_id == "a" and ok.on_existing is None
