"""The worker's web view: source list, live JPEG with overlays, MJPEG, JSON; and in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.confine import Confinement
from pipeline.masks import box_to_mask, rle_encode
from pipeline.outputs.config import PublishConfig
from pipeline.outputs.redis_streams import Publisher, connect
from pipeline.outputs.render import RenderConfig, track_color
from pipeline.sources import open_source
from pipeline.types import FrameResult, Track, TrackState
from workers.http import start_http_server

SID = "sq-live"
LAST = 5
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture()
def served(redis_url: str, square_clip):
    """Six frames of the square clip published to a real Redis, and the web view serving it."""
    clip, boxes = square_clip
    client = connect(redis_url)
    publisher = Publisher(client, SID, PublishConfig(batch=4))
    for i in range(LAST + 1):
        box = boxes[i]
        track = Track(1, "square", TrackState.ACTIVE, 0.95, tuple(map(float, box)),
                      rle_encode(box_to_mask(box, 240, 320)))  # fmt: skip
        publisher.publish(FrameResult(SID, i, i / 25, 0.0, 320, 240, "test", [track]))
    assert publisher.flush()
    publisher.set_state(status="running", source=str(clip), frames_done=LAST + 1, total=30,
                        fps=12.5, last_frame=LAST, last_error="")  # fmt: skip
    Publisher(client, "broken", PublishConfig()).set_state(
        status="failed", source="rtsp://cam.invalid/x", last_error="connection refused"
    )
    server = start_http_server(redis_url, 0, Confinement.of([clip.parent], ["rtsp"]))
    yield server, clip, boxes
    server.shutdown()
    client.close()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def _frame(clip: Path, index: int) -> np.ndarray:
    source = open_source(str(clip), "check")
    try:
        return next(iter(source.frames(start=index))).image
    finally:
        source.close()


def _assert_overlay(image: np.ndarray, clip: Path, box: tuple[int, int, int, int]) -> None:
    """In the mask: the frame blended with track 1's colour; outside: the frame itself."""
    plain = _frame(clip, LAST).astype(float)
    x0, y0, x1, y1 = box
    inner = (slice(y0 + 8, y1 - 8), slice(x0 + 8, x1 - 8))
    alpha = RenderConfig().alpha
    expected = plain[inner] * (1 - alpha) + np.array(track_color(1)) * alpha
    assert np.abs(image[inner].astype(float) - expected).mean() < 8
    assert np.abs(image[inner].astype(float) - plain[inner]).mean() > 40
    outside = (slice(200, 240), slice(240, 320))
    assert np.abs(image[outside].astype(float) - plain[outside]).mean() < 8


def _decode_jpeg(data: bytes) -> np.ndarray:
    assert data[:2] == b"\xff\xd8"
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                        cv2.COLOR_BGR2RGB)  # fmt: skip


def test_api_lists_sources_with_their_state(served):
    server, clip, _ = served
    status, ctype, body = _get(f"{server.url}/api/sources")
    assert (status, ctype) == (200, "application/json")
    states = {s["source_id"]: s for s in json.loads(body)}
    assert sorted(states) == ["broken", SID]
    assert states[SID]["status"] == "running"
    assert (states[SID]["frames_done"], states[SID]["total"], states[SID]["fps"]) == (6, 30, 12.5)
    assert states[SID]["last_error"] is None and states[SID]["source"] == str(clip)
    assert states["broken"]["last_error"] == "connection refused"
    status, _, body = _get(f"{server.url}/api/sources/{SID}")
    assert status == 200 and json.loads(body)["last_frame"] == LAST


def test_index_page_lists_sources(served):
    server, _, _ = served
    status, ctype, body = _get(server.url + "/")
    page = body.decode()
    assert status == 200 and ctype.startswith("text/html")
    assert f"href='/source/{SID}'" in page and "running" in page
    assert "connection refused" in page and "http-equiv='refresh'" in page


def test_latest_jpeg_draws_the_mask_over_the_video_frame(served):
    server, clip, boxes = served
    status, ctype, body = _get(f"{server.url}/source/{SID}/latest.jpg")
    assert (status, ctype) == (200, "image/jpeg")
    image = _decode_jpeg(body)
    assert image.shape == (240, 320, 3)
    _assert_overlay(image, clip, boxes[LAST])


def test_mjpeg_stream_sends_jpeg_parts(served):
    server, clip, boxes = served
    with urllib.request.urlopen(f"{server.url}/source/{SID}/mjpeg", timeout=10) as r:
        assert r.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        assert r.readline() == b"--frame\r\n"
        assert r.readline() == b"Content-Type: image/jpeg\r\n"
        length = int(r.readline().decode().split(":")[1])
        assert r.readline() == b"\r\n"
        image = _decode_jpeg(r.read(length))
    _assert_overlay(image, clip, boxes[LAST])


def test_unknown_sources_and_live_sources(served):
    server, _, _ = served
    for path in ("/source/nope", "/source/nope/latest.jpg", "/api/sources/nope", "/x/y"):
        status, _, body = _get(server.url + path)
        assert status == 404, path
    status, _, body = _get(f"{server.url}/source/broken/latest.jpg")  # state but no frames
    assert status == 404 and b"no frame published yet" in body


def test_a_video_outside_the_allowed_folders_is_not_read(served, tmp_path):
    """The state's ``source`` comes from Redis: the live view confines it as jobs are confined."""
    server, clip, boxes = served
    client = server.dashboard.client
    outside = tmp_path / "elsewhere" / "square.mp4"  # a real, readable video, but not allowed
    outside.parent.mkdir()
    outside.write_bytes(clip.read_bytes())
    publisher = Publisher(client, "outside", PublishConfig())
    box = boxes[0]
    track = Track(1, "square", TrackState.ACTIVE, 0.9, tuple(map(float, box)),
                  rle_encode(box_to_mask(box, 240, 320)))  # fmt: skip
    publisher.publish(FrameResult("outside", 0, 0.0, 0.0, 320, 240, "test", [track]))
    for uri in (str(outside), f"{clip.parent}/../elsewhere/square.mp4"):  # also through ..
        publisher.set_state(status="running", source=uri, last_error="")
        assert publisher.flush()
        status, _, body = _get(f"{server.url}/api/sources/outside")
        refused = json.loads(body)["video_refused"]
        assert status == 200 and refused.startswith("the live view does not read it:"), uri
        assert "DINOTRACK_WORKER__ALLOWED" in refused
        status, ctype, body = _get(f"{server.url}/source/outside/latest.jpg")
        assert (status, ctype) == (200, "image/jpeg")
        image = _decode_jpeg(body)
        assert image.shape == (240, 320, 3)
        corner = image[:40, 200:].astype(float)  # no video there: the grey canvas, not the frame
        assert np.abs(corner - 64).mean() < 4
        assert "outside" not in server.dashboard._videos  # never opened
    publisher.set_state(source=str(clip))  # inside the allowed folder: drawn over the video
    assert publisher.flush()
    status, _, body = _get(f"{server.url}/api/sources/outside")
    assert "video_refused" not in json.loads(body)
    image = _decode_jpeg(_get(f"{server.url}/source/outside/latest.jpg")[2])
    plain = _frame(clip, 0).astype(float)
    assert np.abs(image[:40, 200:].astype(float) - plain[:40, 200:]).mean() < 8


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)


def require_chromium(found: str | None) -> str:
    """Chromium's path; without one the test skips, except in CI (``CI=true``), where it fails."""
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                "CI=true but Chromium is not installed — .ci/run installs it with apt-get "
                "(as root); install it (apt-get install chromium) so the page test runs"
            )
        pytest.skip("Chromium not installed (apt-get install chromium)")
    return found


def test_without_chromium_the_page_test_skips_but_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but Chromium is not installed"):
        require_chromium(None)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="Chromium not installed"):
        require_chromium(None)
    assert require_chromium("/usr/bin/chromium") == "/usr/bin/chromium"


def test_in_chromium_page_lists_source_and_live_view_shows_overlay(served, tmp_path):
    require_chromium(CHROMIUM)
    server, clip, boxes = served
    dom = _chromium(["--dump-dom", server.url + "/"], tmp_path).stdout
    assert f'<a href="/source/{SID}">{SID}</a>' in dom
    assert 'class="running"' in dom
    live = _chromium(["--virtual-time-budget=3000", "--dump-dom", f"{server.url}/source/{SID}"],
                     tmp_path).stdout  # fmt: skip
    assert f"{server.url}/source/{SID}/latest.jpg?t=" in live  # the page's refresh loaded a JPEG
    assert f"running · frame {LAST} · {LAST + 1} / 30 frames · 12.5 fps" in live
    shot = tmp_path / "live.png"
    _chromium(["--window-size=400,500", f"--screenshot={shot}",
               f"{server.url}/source/{SID}/latest.jpg"], tmp_path)  # fmt: skip
    png = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    # Chromium shows an image alone centred on a dark page: find it by its size
    ys, xs = np.nonzero(np.abs(png.astype(int) - png[0, 0].astype(int)).sum(axis=2) > 30)
    top, left = ys.min(), xs.min()
    shown = png[top : top + 240, left : left + 320]
    _assert_overlay(shown, clip, boxes[LAST])
