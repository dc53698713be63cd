"""Bad files: each ends with a clear SourceError and a source.error event, after the good frames."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from pipeline.sources import SourceConfig, SourceError, open_source, probe
from tests.sources.conftest import assert_content, make_clip


def open_fails(path: Path, event_log, match: str) -> SourceError:
    started = time.monotonic()
    with pytest.raises(SourceError, match=match) as info:
        open_source(str(path), "bad", on_event=event_log)
    assert time.monotonic() - started < 5
    assert event_log.kinds == ["source.error"]
    assert event_log.events[0].message == str(info.value)
    return info.value


def test_missing_file(tmp_path, event_log):
    error = open_fails(tmp_path / "nope.mp4", event_log, "file not found — check the path")
    assert "nope.mp4" in str(error)


def test_empty_file(tmp_path, event_log):
    (tmp_path / "empty.mp4").write_bytes(b"")
    open_fails(tmp_path / "empty.mp4", event_log, r"'.*empty\.mp4' is empty \(0 bytes\)")


def test_text_file_named_mp4(tmp_path, event_log):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 20)
    open_fails(tmp_path / "notes.mp4", event_log, r"notes\.mp4' is not a video")


def test_mp4_cut_before_its_index(tmp_path, event_log):
    # a plain mp4 keeps its index (moov) at the end: cut in the middle, nothing is readable
    data = make_clip(tmp_path / "whole.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    open_fails(tmp_path / "cut.mp4", event_log, r"cut\.mp4' is not a video")


def test_truncated_mp4_yields_its_frames_then_fails(clips, tmp_path, event_log):
    # faststart: index first, so the first half of the frames can still be decoded
    data = clips["faststart"].read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    source = open_source(str(cut), "t", on_event=event_log)
    assert source.info.reader == "pyav"  # decord refuses the whole file
    got = []
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"half\.mp4' is truncated") as info:
        for frame in source.frames():
            got.append(frame)
    assert time.monotonic() - started < 5
    assert 5 <= len(got) < 40
    assert [f.index for f in got] == list(range(len(got)))
    assert_content(got)
    assert event_log.kinds == ["source.error"]
    assert event_log.events[0].frame_index == got[-1].index
    assert f"after frame {got[-1].index}" in str(info.value)


def test_video_without_frames(tmp_path, event_log):
    path = tmp_path / "zero.avi"
    container = av.open(str(path), "w")
    stream = container.add_stream("mjpeg", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
    container.start_encoding()
    container.close()
    open_fails(path, event_log, r"zero\.avi' has no frames")


def test_container_without_video_stream(tmp_path, event_log):
    path = tmp_path / "novideo.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.close()
    open_fails(path, event_log, r"novideo\.mp4' has no video stream")


def test_unsupported_codec(tmp_path, event_log):
    data = make_clip(tmp_path / "h264.mp4").read_bytes()
    # rename the codec in the sample description: no decoder knows "zzz9"
    (tmp_path / "odd.mp4").write_bytes(data.replace(b"avc1", b"zzz9"))
    open_fails(tmp_path / "odd.mp4", event_log, r"odd\.mp4' uses a codec this build cannot decode")


def test_absurd_resolution_is_downscaled_to_the_pixel_cap(tmp_path):
    path = make_clip(tmp_path / "wide.mp4", n=3, size=(64, 1024))
    info = probe(str(path), SourceConfig(max_pixels=16_000))
    assert info.width * info.height <= 16_000
    assert info.width / info.height == pytest.approx(16, rel=0.15)
    frame = next(iter(open_source(str(path), "w", SourceConfig(max_pixels=16_000)).frames()))
    assert frame.image.shape == (info.height, info.width, 3)


def test_bad_config_names_the_value():
    with pytest.raises(ValueError, match="'ten' is not a frame number"):
        SourceConfig(start="ten")
    with pytest.raises(ValueError, match="choose one way of sampling"):
        SourceConfig(stride=2, target_fps=5)
