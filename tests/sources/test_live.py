"""Live sources against a real MPEG-TS-over-HTTP server on loopback, run by the tests."""

from __future__ import annotations

import io
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import cv2
import numpy as np
import pytest

from pipeline.sources import SourceConfig, SourceError, is_live, open_source, probe
from pipeline.sources.live import backoff_delay
from tests.sources.conftest import frame_image, level


def ts_payload(n: int) -> bytes:
    """An MPEG-TS stream of ``n`` flat-grey H.264 frames (frame i is level(i)) at 25 fps."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "5", "bf": "0"}
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_image(i), "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


class TSServer:
    """Serves ``payload`` over HTTP, paced over ``seconds``; can stall mid-way, stop and restart.

    Args:
        payload: The MPEG-TS bytes sent to every client.
        seconds: Time taken to send the payload.
        stall_at: Fraction of the payload after which the server stops sending but keeps the
            connection open (a stream that dies without closing), or None.
    """

    def __init__(self, payload: bytes, seconds: float = 0.3, stall_at: float | None = None):
        self.payload, self.seconds, self.stall_at = payload, seconds, stall_at
        self.port = 0
        self.served = 0
        self.done = threading.Event()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.ts"

    def start(self) -> TSServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                if owner.stall_at is None:
                    self.send_header("Content-Length", str(len(owner.payload)))
                self.end_headers()
                data = owner.payload
                limit = len(data) if owner.stall_at is None else int(len(data) * owner.stall_at)
                chunk = 188 * 8
                pause = owner.seconds * chunk / len(data)
                try:
                    for offset in range(0, limit, chunk):
                        self.wfile.write(data[offset : min(offset + chunk, limit)])
                        self.wfile.flush()
                        time.sleep(pause)
                    if owner.stall_at is not None:
                        owner._stopping.wait(10)
                except OSError:
                    return
                owner.served += 1
                owner.done.set()

            def log_message(self, *args) -> None:
                pass

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@pytest.fixture(scope="module")
def payload() -> bytes:
    return ts_payload(20)


def test_uri_kinds():
    assert is_live("rtsp://cam.local/stream") and is_live("udp://0.0.0.0:5000")
    assert is_live("https://example.org/live.m3u8") and is_live("/dev/video0")
    assert not is_live("/data/clip.mp4") and not is_live("clip.mp4")


def test_backoff_doubles_with_jitter_and_a_cap():
    config = SourceConfig(backoff_initial_s=0.5, backoff_max_s=3.0)
    rng = random.Random(0)
    delays = [backoff_delay(a, config, rng) for a in range(1, 7)]
    caps = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not identical


def test_slow_consumer_gets_the_freshest_frames_and_drops_are_counted(event_log):
    server = TSServer(ts_payload(40), seconds=0.4).start()
    try:
        config = SourceConfig(live_buffer=2, reconnect=False, read_timeout_s=2)
        source = open_source(server.url, "cam", config, on_event=event_log)
        assert (source.info.kind, source.info.width, source.info.height) == ("live", 64, 48)
        got = []
        for frame in source.frames():
            got.append(frame)
            time.sleep(0.05)  # slower than the camera
        source.close()
    finally:
        server.stop()
    indices = [f.index for f in got]
    assert indices == sorted(set(indices)) and indices[-1] == 39  # the freshest frame is kept
    assert source.dropped > 0 and len(got) + source.dropped == 40
    assert all(abs(float(f.image.mean()) - level(f.index)) < 3 for f in got)
    assert np.all(np.diff([f.pts for f in got]) > 0)
    assert got[0].wall_time <= got[-1].wall_time
    assert event_log.kinds == ["source.connected", "source.disconnected", "source.eof"]


def test_reconnects_and_keeps_counting(payload, event_log):
    server = TSServer(payload, seconds=0.2).start()

    def restart_once() -> None:
        server.done.wait(5)
        server.stop()  # the stream goes away...
        time.sleep(0.3)
        server.done.clear()
        server.start()  # ...and comes back on the same port
        server.done.wait(5)
        server.stop()  # then it is gone for good

    restarter = threading.Thread(target=restart_once, daemon=True)
    restarter.start()
    config = SourceConfig(
        live_buffer=64, max_retries=3, backoff_initial_s=0.2, backoff_max_s=0.4, open_timeout_s=1
    )  # retry delays add up to at least 0.1 + 0.2 + 0.2 s: longer than the 0.3 s outage
    got = []
    started = time.monotonic()
    with pytest.raises(SourceError, match="disconnected .* did not come back after 3 retries"):
        source = open_source(server.url, "cam", config, on_event=event_log)
        for frame in source.frames():
            got.append(frame)
    restarter.join(5)
    assert time.monotonic() - started < 10
    assert [f.index for f in got] == list(range(40))  # continues across the reconnect
    assert all(abs(float(f.image.mean()) - level(f.index % 20)) < 3 for f in got)
    assert np.all(np.diff([f.pts for f in got]) > 0)
    kinds = event_log.kinds
    assert kinds.count("source.connected") == 2
    assert kinds[:3] == ["source.connected", "source.disconnected", "source.reconnecting"]
    assert kinds[-4:] == ["source.reconnecting"] * 3 + ["source.error"]
    second = [e for e in event_log.events if e.kind == "source.connected"][1]
    assert second.frame_index == 20 and second.message.startswith("reconnected")
    attempts = [e.extra["attempt"] for e in event_log.events if e.kind == "source.reconnecting"]
    assert attempts[-3:] == [1, 2, 3]


def test_stream_that_never_answers_times_out(event_log):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections in the kernel, never says a word
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/live.ts"
    config = SourceConfig(open_timeout_s=0.5, max_retries=1, backoff_initial_s=0.05)
    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match=r"did not answer within 0\.5 s after 1 retries"):
            open_source(url, "cam", config, on_event=event_log)
    finally:
        silent.close()
    assert time.monotonic() - started < 3
    assert event_log.kinds == ["source.reconnecting", "source.error"]


def test_stream_that_dies_mid_way_yields_its_frames_then_fails(payload, event_log):
    server = TSServer(ts_payload(40), seconds=0.3, stall_at=0.6).start()
    config = SourceConfig(read_timeout_s=0.5, reconnect=False, live_buffer=64)
    got = []
    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match=r"disconnected \(no data for 0\.5 s\)"):
            source = open_source(server.url, "cam", config, on_event=event_log)
            for frame in source.frames():
                got.append(frame.index)
    finally:
        server.stop()
    assert time.monotonic() - started < 5
    assert 5 < len(got) < 40 and got == list(range(len(got)))
    assert event_log.kinds == ["source.connected", "source.disconnected", "source.error"]


def test_probe_of_a_live_stream(payload):
    server = TSServer(payload, seconds=0.2).start()
    try:
        info = probe(server.url)
    finally:
        server.stop()
    assert (info.kind, info.frames, info.width, info.height, info.codec, info.reader) == (
        "live",
        None,
        64,
        48,
        "h264",
        "pyav",
    )


def test_mjpeg_over_http(event_log):
    jpegs = [cv2.imencode(".jpg", frame_image(i))[1].tobytes() for i in range(15)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for jpeg in jpegs:
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                self.wfile.write(head % len(jpeg) + jpeg + b"\r\n")
                time.sleep(0.01)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/video.mjpg"
    got = []
    try:
        source = open_source(url, "cam", SourceConfig(reconnect=False, live_buffer=32), event_log)
        assert source.info.codec == "mjpeg"
        with pytest.raises(SourceError, match="disconnected"):  # the camera hangs up
            for frame in source.frames():
                got.append(frame)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [f.index for f in got] == list(range(15))
    assert all(abs(float(f.image.mean()) - level(f.index)) < 3 for f in got)


def test_mjpeg_rate_and_pts_follow_arrival_time(event_log):
    """A 10 fps MJPEG camera: probe says 10 fps (not FFmpeg's guessed 25), PTS advance 0.1 s a
    frame, as wall time does (so an outage shows as a gap of its real length)."""
    jpegs = [cv2.imencode(".jpg", frame_image(i))[1].tobytes() for i in range(16)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for jpeg in jpegs:
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                self.wfile.write(head % len(jpeg) + jpeg + b"\r\n")
                time.sleep(0.1)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/video.mjpg"
    try:
        info = probe(url)
        config = SourceConfig(live_buffer=64, max_retries=1, backoff_initial_s=0.8,
                              backoff_max_s=0.8)  # fmt: skip
        source = open_source(url, "cam", config, event_log)
        got = []
        with pytest.raises(SourceError, match="did not come back"):
            for frame in source.frames():
                got.append(frame)
                if len(got) == 16:
                    httpd.shutdown()  # the camera goes away after one round...
                    httpd.server_close()
    finally:
        httpd.shutdown()
    assert info.codec == "mjpeg" and 8.0 <= info.fps <= 12.0
    assert [f.index for f in got] == list(range(16))
    steps = np.diff([f.pts for f in got])
    assert 0.07 <= float(np.median(steps)) <= 0.14  # arrival time, not 0.04 s a frame
    assert abs((got[-1].pts - got[0].pts) - (got[-1].wall_time - got[0].wall_time)) < 0.05
