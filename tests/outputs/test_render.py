"""Drawing results over frames: colours where the masks are, trails, mp4 and PNG output."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from pipeline.masks import box_to_mask, rle_encode
from pipeline.outputs.render import (
    RenderConfig,
    Renderer,
    match_frames,
    render_frame,
    render_video,
    track_color,
    write_png,
)
from pipeline.types import Frame, FrameResult, Track, TrackState
from tests.conftest import moving_square_frames

H, W = 240, 320


def _result(index: int, box: tuple[int, int, int, int], state: TrackState = TrackState.ACTIVE):
    mask = rle_encode(box_to_mask(box, H, W))
    track = Track(1, "square", state, 0.9, tuple(float(v) for v in box), mask)
    return FrameResult("sq", index, index / 25, 0.0, W, H, "test", [track])


@pytest.fixture(scope="module")
def clip():
    frames, boxes = moving_square_frames(n=12)
    return [Frame("sq", i, i / 25, 0.0, img) for i, img in enumerate(frames)], boxes


def test_mask_is_blended_in_track_colour_and_background_untouched(clip):
    frames, boxes = clip
    config = RenderConfig(alpha=0.5, trail=0)
    out = render_frame(frames[3], _result(3, boxes[3]), Renderer(config))
    x0, y0, x1, y1 = boxes[3]
    inner = (slice(y0 + 6, y1 - 6), slice(x0 + 6, x1 - 6))
    expected = frames[3].image[inner] * 0.5 + np.array(track_color(1)) * 0.5
    assert np.abs(out[inner].astype(float) - expected).max() <= 1.0
    # far from the box and its tag, pixels are the frame's own
    assert np.array_equal(out[200:, 200:], frames[3].image[200:, 200:])
    # the contour is drawn in the track colour on the mask's edge
    edge = out[(y0 + y1) // 2, x0].astype(int)
    assert np.abs(edge - np.array(track_color(1))).max() <= 6


def test_masks_and_boxes_scale_to_another_frame_size(clip):
    frames, boxes = clip
    big = cv2.resize(frames[0].image, (W * 2, H * 2), interpolation=cv2.INTER_NEAREST)
    out = Renderer(RenderConfig(alpha=1.0, trail=0)).draw(big, _result(0, boxes[0]))
    x0, y0, x1, y1 = (2 * v for v in boxes[0])
    assert tuple(out[(y0 + y1) // 2, (x0 + x1) // 2]) == track_color(1)
    assert tuple(out[y0 - 20, x1 + 20]) == tuple(big[y0 - 20, x1 + 20])


def test_trails_are_bounded_and_follow_box_centres(clip):
    frames, boxes = clip
    renderer = Renderer(RenderConfig(trail=4, max_tracks=2))
    for i in range(len(frames)):
        renderer.draw(frames[i].image, _result(i, boxes[i]))
    trail = renderer.trails[1]
    assert len(trail) == 4
    assert trail[-1] == ((boxes[-1][0] + boxes[-1][2]) / 2, (boxes[-1][1] + boxes[-1][3]) / 2)
    for tid in (5, 6, 7):  # three more tracks: only the two most recent are kept
        track = Track(tid, None, TrackState.ACTIVE, 1.0, (0.0, 0.0, 10.0, 10.0))
        renderer.remember(FrameResult("sq", 99, 0, 0, W, H, "test", [track]))
    assert sorted(renderer.trails) == [6, 7]
    ended = Track(7, None, TrackState.ENDED, 1.0, None)
    renderer.remember(FrameResult("sq", 100, 0, 0, W, H, "test", [ended]))
    assert sorted(renderer.trails) == [6]


def test_lost_tracks_are_not_drawn(clip):
    frames, boxes = clip
    lost = _result(2, boxes[2], TrackState.LOST)
    out = render_frame(frames[2], lost)
    assert np.array_equal(out, frames[2].image)


def test_bad_inputs_are_refused_with_a_clear_message(clip, tmp_path):
    frames, boxes = clip
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        render_frame(frames[0].image.astype(np.float32), _result(0, boxes[0]))
    with pytest.raises(ValueError, match=r"\.mp4"):
        render_video([], frames, tmp_path / "out.avi")
    with pytest.raises(ValueError, match="alpha"):
        RenderConfig(alpha=2.0)


def test_match_frames_pairs_by_index():
    frames = [Frame("s", i, 0.0, 0.0, np.zeros((2, 2, 3), np.uint8)) for i in range(0, 10)]
    results = [FrameResult("s", i, 0, 0, 2, 2, "t") for i in (1, 4, 4, 7, 12)]
    pairs = [(f.index, r.frame_index) for f, r in match_frames(results, frames)]
    assert pairs == [(1, 1), (4, 4), (7, 7)]


def test_render_video_writes_h264_with_true_timing(clip, tmp_path):
    frames, boxes = clip
    results = [_result(i, boxes[i]) for i in range(0, 12, 2)]  # a strided run: every 2nd frame
    out = tmp_path / "render.mp4"
    assert render_video(results, frames, out) == 6
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = list(container.decode(stream))
    assert len(decoded) == 6
    assert [round(float(f.time), 2) for f in decoded] == [0.0, 0.08, 0.16, 0.24, 0.32, 0.4]
    img = decoded[2].to_ndarray(format="rgb24")
    x0, y0, x1, y1 = boxes[4]
    inner = img[y0 + 8 : y1 - 8, x0 + 8 : x1 - 8].reshape(-1, 3).mean(0)
    plain = frames[4].image[y0 + 8 : y1 - 8, x0 + 8 : x1 - 8].reshape(-1, 3).mean(0)
    alpha = RenderConfig().alpha
    expected = plain * (1 - alpha) + np.array(track_color(1)) * alpha
    assert np.abs(inner - expected).max() < 12


def test_write_png_round_trips_rgb(clip, tmp_path):
    frames, boxes = clip
    img = render_frame(frames[1], _result(1, boxes[1]))
    path = write_png(tmp_path / "f.png", img)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, img)
    with pytest.raises(OSError, match="cannot write PNG"):
        write_png(tmp_path / "missing" / "f.png", img)


# --- `dinotrack render` (workers/commands/render.py) against a real Redis and a real video ---


@pytest.fixture()
def published(redis_url, square_clip):
    from pipeline.outputs.config import PublishConfig
    from pipeline.outputs.redis_streams import Publisher, connect

    clip, boxes = square_clip
    client = connect(redis_url)
    publisher = Publisher(client, "sq", PublishConfig(batch=8))
    for i in range(0, 20, 2):
        publisher.publish(_result(i, boxes[i]))
    assert publisher.flush()
    publisher.set_state(status="finished", source=str(clip))
    client.close()
    return redis_url, clip, boxes


def _cli(*args: str):
    import typer
    from typer.testing import CliRunner

    from workers.commands.render import render

    app = typer.Typer()
    app.command()(render)
    app.command("noop")(lambda: None)  # two commands: the verb is named as in `dinotrack render`
    return CliRunner().invoke(app, ["render", *args])


def test_render_command_writes_mp4_of_published_frames(published, tmp_path):
    redis_url, clip, boxes = published
    out = tmp_path / "renders" / "sq.mp4"
    result = _cli("--source-id", "sq", "--out", str(out), "--redis", redis_url)
    assert result.exit_code == 0, result.output
    assert "wrote 10 frames" in result.output
    with av.open(str(out)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 10
    assert [round(float(f.time), 2) for f in decoded[:3]] == [0.0, 0.08, 0.16]
    _assert_blended(decoded[-1].to_ndarray(format="rgb24"), clip, 18, boxes[18])


def _assert_blended(img: np.ndarray, clip, index: int, box) -> None:
    """The mask interior is the video frame blended with track 1's colour (JPEG/H.264 slack)."""
    from pipeline.sources import open_source

    source = open_source(str(clip), "check")
    plain = next(iter(source.frames(start=index))).image.astype(float)
    source.close()
    x0, y0, x1, y1 = box
    inner = (slice(y0 + 8, (y0 + y1) // 2 - 3), slice(x0 + 8, x1 - 8))  # above the trail
    alpha = RenderConfig().alpha
    expected = plain[inner] * (1 - alpha) + np.array(track_color(1)) * alpha
    assert np.abs(img[inner] - expected).mean() < 8
    assert np.abs(img[inner] - plain[inner]).mean() > 40


def test_render_command_writes_one_png_with_video_given(published, tmp_path):
    redis_url, clip, boxes = published
    out = tmp_path / "f.png"
    args = ("--source-id", "sq", "--out", str(out), "--redis", redis_url, "--video", str(clip))
    result = _cli(*args, "--frame", "6")
    assert result.exit_code == 0, result.output
    img = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert img.shape == (240, 320, 3)
    _assert_blended(img.astype(float), clip, 6, boxes[6])
    # the trail joins the box centres of frames 0, 2, 4 and 6, drawn in the track's colour
    y = (boxes[6][1] + boxes[6][3]) // 2
    centre_0, centre_6 = (boxes[0][0] + boxes[0][2]) // 2, (boxes[6][0] + boxes[6][2]) // 2
    assert np.abs(img[y, centre_0 + 2 : centre_6 - 2].astype(int) - track_color(1)).max() <= 25


def test_render_command_refuses_bad_requests_with_a_clear_message(published, tmp_path):
    redis_url, clip, _ = published
    base = ("--redis", redis_url)
    bad = _cli("--source-id", "sq", "--out", str(tmp_path / "x.gif"), *base)
    assert bad.exit_code == 2 and "must end in .mp4" in bad.output
    bad = _cli("--source-id", "sq", "--out", str(tmp_path / "x.png"), "--frame", "7", *base)
    assert bad.exit_code == 2 and "frame 7 of 'sq' was not published" in bad.output
    bad = _cli("--source-id", "nope", "--out", str(tmp_path / "x.mp4"), *base)
    assert bad.exit_code == 2 and "no frames published for source 'nope'" in bad.output
    bad = _cli("--source-id", "sq", "--out", str(tmp_path / "x.mp4"), "--video", "rtsp://cam/x",
               *base)  # fmt: skip
    assert bad.exit_code == 2 and "live stream" in bad.output
