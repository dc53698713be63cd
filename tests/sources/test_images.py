"""Image folders: natural order, PTS from images_fps, sampling, resume, unreadable images."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from pipeline.sources import SourceConfig, SourceError, open_source, probe
from tests.sources.conftest import assert_content, frame_image


def write_folder(folder: Path, names: list[str]) -> Path:
    """Write ``names[i]`` as a flat image of level(i) (BGR on disk, like any image tool)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), cv2.cvtColor(frame_image(i), cv2.COLOR_RGB2BGR))
    return folder


def test_frames_in_natural_order_with_pts_from_fps(tmp_path):
    names = [f"frame{i}.png" for i in range(12)]  # frame10 sorts after frame9, not after frame1
    folder = write_folder(tmp_path / "seq", names)
    (folder / "notes.txt").write_text("not an image")
    source = open_source(str(folder), "imgs", SourceConfig(images_fps=10))
    frames = list(source.frames())
    assert [f.index for f in frames] == list(range(12))
    assert [f.pts for f in frames] == pytest.approx([i / 10 for i in range(12)])
    assert_content(frames, tolerance=0.5)
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.flags["C_CONTIGUOUS"]
    assert source.info.kind == "images" and source.info.frames == 12 and source.info.fps == 10


def test_davis_style_folder_with_stride_range_resize_and_resume(tmp_path):
    folder = write_folder(tmp_path / "davis", [f"{i:05d}.jpg" for i in range(20)])
    config = SourceConfig(stride=4, start=2, end="00:00:00.64", resize_short_side=24)
    source = open_source(str(folder), "d", config)
    frames = list(source.frames())
    # default 25 fps: 0.64 s is frame 16 (excluded)
    assert [f.index for f in frames] == [2, 6, 10, 14]
    assert frames[0].image.shape == (24, 32, 3)
    assert_content(frames)
    assert [f.index for f in source.frames(start=7)] == [10, 14]
    assert probe(str(folder), config).to_dict()["width"] == 32


def test_real_davis_sequence(shared_data):
    folder = shared_data / "davis2016-dev" / "JPEGImages" / "480p"
    seq = (
        next((p for p in sorted(folder.glob("*")) if p.is_dir()), None) if folder.is_dir() else None
    )
    if seq is None:
        pytest.skip("no DAVIS JPEGImages folder in the shared data")
    frames = list(open_source(str(seq), "davis", SourceConfig(stride=10)).frames())
    assert frames[0].image.shape == (480, 854, 3)
    assert [f.index for f in frames] == list(range(0, len(list(seq.glob("*.jpg"))), 10))


def test_unreadable_image_ends_with_error_after_good_frames(tmp_path, event_log):
    folder = write_folder(tmp_path / "broken", [f"{i:05d}.png" for i in range(5)])
    (folder / "00003.png").write_bytes(b"this is not a png")
    source = open_source(str(folder), "b", on_event=event_log)
    got = []
    with pytest.raises(SourceError, match=r"00003\.png.*not a readable image"):
        for frame in source.frames():
            got.append(frame.index)
    assert got == [0, 1, 2]
    assert event_log.kinds == ["source.error"] and event_log.events[0].frame_index == 2


def test_folder_without_images_is_refused(tmp_path, event_log):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path / "empty"), "e", on_event=event_log)
    assert event_log.kinds == ["source.error"]
