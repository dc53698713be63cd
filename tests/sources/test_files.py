"""Video files: exact index and PTS, sampling, ranges, resume, resize, fallback to PyAV."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from pipeline.sources import SourceConfig, SourceError, open_source, probe
from tests.sources.conftest import assert_content, frame_image, level


@pytest.mark.parametrize("reader", ["decord", "pyav"])
def test_every_frame_has_exact_index_and_pts(clips, reader):
    source = open_source(str(clips["cfr"]), "cam", SourceConfig(reader=reader))
    frames = list(source.frames())
    source.close()
    assert source.info.reader == reader
    assert [f.index for f in frames] == list(range(30))
    assert [f.pts for f in frames] == pytest.approx([0.04 * i for i in range(30)], abs=1e-4)
    assert_content(frames)
    f = frames[0]
    assert f.source_id == "cam" and f.image.dtype == np.uint8 and f.image.shape == (48, 64, 3)
    assert f.image.flags["C_CONTIGUOUS"]
    assert source.dropped == 0


@pytest.mark.parametrize("reader", ["decord", "pyav"])
def test_stride_keeps_true_indices(clips, reader):
    source = open_source(str(clips["cfr"]), "cam", SourceConfig(stride=5, reader=reader))
    frames = list(source.frames())
    assert [f.index for f in frames] == [0, 5, 10, 15, 20, 25]
    assert frames[2].pts == pytest.approx(0.4, abs=1e-4)
    assert_content(frames)


@pytest.mark.parametrize("reader", ["decord", "pyav"])
def test_target_fps_and_time_range(clips, reader):
    config = SourceConfig(target_fps=5, start="00:00:00.2", end="00:00:01", reader=reader)
    frames = list(open_source(str(clips["cfr"]), "cam", config).frames())
    # 25 fps source, 5 fps wanted: one frame in five, from 0.2 s up to (not including) 1.0 s.
    assert [f.index for f in frames] == [5, 10, 15, 20]
    assert_content(frames)


@pytest.mark.parametrize("reader", ["decord", "pyav"])
def test_resume_yields_the_tail_of_a_full_run(clips, reader):
    config = SourceConfig(stride=3, start=2, end=28, reader=reader)
    full = [(f.index, f.pts) for f in open_source(str(clips["cfr"]), "c", config).frames()]
    source = open_source(str(clips["cfr"]), "c", config)
    tail = list(source.frames(start=17))  # lies after the keyframe at 10, before the one at 20
    assert [(f.index, f.pts) for f in tail] == [p for p in full if p[0] >= 17]
    assert [f.index for f in tail] == [17, 20, 23, 26]
    assert_content(tail)
    again = list(source.frames(start=4))  # seeking backwards on the same source
    assert [f.index for f in again][:2] == [5, 8]
    assert_content(again)


@pytest.mark.parametrize("reader", ["decord", "pyav"])
def test_decodes_straight_to_the_short_side(clips, reader):
    source = open_source(str(clips["cfr"]), "c", SourceConfig(resize_short_side=24, reader=reader))
    frame = next(iter(source.frames()))
    assert frame.image.shape == (24, 32, 3)
    assert (source.info.width, source.info.height) == (32, 24)
    assert abs(float(frame.image.mean()) - level(0)) < 3


def test_pixel_cap_downscales_and_logs(clips, caplog):
    with caplog.at_level(logging.WARNING, logger="dinotrack.sources"):
        source = open_source(str(clips["cfr"]), "c", SourceConfig(max_pixels=32 * 24))
    frame = next(iter(source.frames()))
    assert frame.image.shape == (24, 32, 3)
    assert "max_pixels" in caplog.text


def test_vfr_file_is_read_with_pyav_and_true_pts(clips, caplog):
    with caplog.at_level(logging.INFO, logger="dinotrack.sources"):
        source = open_source(str(clips["vfr"]), "c")
    assert source.info.reader == "pyav" and source.info.vfr
    assert "variable frame rate" in caplog.text
    frames = list(source.frames())
    assert [f.pts for f in frames[:5]] == pytest.approx([0, 0.04, 0.12, 0.16, 0.24], abs=1e-4)
    assert_content(frames)
    # target fps over a VFR stream follows presentation time, not frame count
    # one frame per 1/5 s slot: the first frame shown in each slot
    sampled = list(open_source(str(clips["vfr"]), "c", SourceConfig(target_fps=5)).frames())
    slots = [int(np.floor(f.pts * 5 + 1e-6)) for f in frames]
    firsts = [f.index for i, f in enumerate(frames) if i == 0 or slots[i] != slots[i - 1]]
    assert [f.index for f in sampled] == firsts
    assert len(sampled) == len(set(slots)) < len(frames)


def test_rotation_is_applied_by_the_pyav_reader(clips, caplog):
    with caplog.at_level(logging.INFO, logger="dinotrack.sources"):
        source = open_source(str(clips["rotated"]), "c")
    assert "rotation" in caplog.text  # decord returns broken frames for rotated videos
    frame = next(iter(source.frames()))
    assert source.info.rotation == 90 and source.info.reader == "pyav"
    assert frame.image.shape == (64, 48, 3)
    assert (source.info.width, source.info.height) == (48, 64)
    with pytest.raises(SourceError, match="cannot be read with decord.*rotation"):
        open_source(str(clips["rotated"]), "c", SourceConfig(reader="decord"))


def test_probe_reports_what_the_source_sees(clips):
    info = probe(str(clips["cfr"]))
    assert info.to_dict() == {
        "uri": str(clips["cfr"]),
        "kind": "file",
        "frames": 30,
        "fps": 25.0,
        "duration": pytest.approx(1.2),
        "width": 64,
        "height": 48,
        "codec": "h264",
        "vfr": False,
        "rotation": 0,
        "reader": "pyav",
    }
    assert probe(str(clips["cfr"]), SourceConfig(reader="decord")).reader == "decord"
    assert probe(str(clips["vfr"])).vfr


def test_a_file_is_opened_once_and_read_on_from_its_first_decoded_frame(clips, monkeypatch):
    opened = []
    real_open = av.open

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    source = open_source(str(clips["cfr"]), "c")
    frames = list(source.frames())
    source.close()
    assert opened == [str(clips["cfr"])]
    assert [f.index for f in frames] == list(range(30))
    assert_content(frames)


@pytest.mark.parametrize("reader", ["decord", "pyav"])
def test_fresh_source_started_inside_the_first_gop_then_read_again(clips, reader):
    source = open_source(str(clips["cfr"]), "c", SourceConfig(reader=reader))
    tail = list(source.frames(start=3))  # keyframe 0 lies before it: decode forward, no seek
    assert [f.index for f in tail] == list(range(3, 30))
    assert [f.pts for f in tail[:2]] == pytest.approx([0.12, 0.16], abs=1e-4)
    assert_content(tail)
    again = list(source.frames())  # the frame decoded at open is used up: rewind
    assert [f.index for f in again] == list(range(30))
    assert_content(again)


def test_mjpeg_avi_size_comes_from_its_decoded_frames(tmp_path):
    path = tmp_path / "cam.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuvj420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = open_source(str(path), "c")
    frames = list(source.frames())
    assert (source.info.codec, source.info.width, source.info.height) == ("mjpeg", 64, 48)
    assert [f.index for f in frames] == list(range(6))
    assert [f.pts for f in frames] == pytest.approx([0.04 * i for i in range(6)], abs=1e-4)
    assert_content(frames)


def test_file_end_is_an_eof_event(clips, event_log):
    list(open_source(str(clips["cfr"]), "c", SourceConfig(stride=10), on_event=event_log).frames())
    assert event_log.kinds == ["source.eof"]
    assert event_log.events[0].frame_index == 20 and event_log.events[0].source_id == "c"


def test_real_footage_decord_and_odd_avi_with_pyav(shared_data):
    footage = shared_data / "footage"
    mp4, avi = footage / "01_dog.mp4", footage / "crowd_topdown_1280x720.avi"
    if not (mp4.is_file() and avi.is_file()):
        pytest.skip("footage clips not found in the shared data")
    for reader in ("auto", "decord"):
        info = probe(str(mp4), SourceConfig(resize_short_side=360, reader=reader))
        assert (info.frames, info.width, info.height) == (289, 640, 360)
        assert info.reader == ("pyav" if reader == "auto" else "decord")
        assert info.fps == pytest.approx(29.97, abs=0.01)
    # this AVI has an irregular interval (and decord reports garbage timestamps for it): PyAV
    # reads it, with PTS from the container
    source = open_source(str(avi), "crowd", SourceConfig(end=3))
    frames = list(source.frames())
    assert source.info.reader == "pyav" and source.info.frames == 341
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.pts for f in frames] == pytest.approx([0.04, 0.08, 0.12])
    assert frames[0].image.shape == (720, 1280, 3)
    with pytest.raises(SourceError, match="cannot be read with decord.*invalid frame timestamps"):
        open_source(str(avi), "crowd", SourceConfig(reader="decord"))
