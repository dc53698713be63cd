"""A real RTSP source: rtsp-server-perl serves what ffmpeg pushes; the server restarts mid-stream.

Needs the Debian packages rtsp-server-perl and ffmpeg (.ci/run installs them); skips without.
rtsp-server-perl relays RTP over UDP only, so the source reads with ``rtsp_transport="udp"``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest

from pipeline.sources import SourceConfig, open_source

pytestmark = pytest.mark.skipif(
    not (shutil.which("rtsp-server-perl") and shutil.which("ffmpeg")),
    reason="RTSP test needs rtsp-server-perl and ffmpeg: apt-get install rtsp-server-perl ffmpeg",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RTSPServer:
    """rtsp-server-perl on loopback, fed a 10 fps 160x120 test pattern by ffmpeg over UDP."""

    def __init__(self) -> None:
        self.client_port, self.source_port = _free_port(), _free_port()
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/cam"

    def start(self) -> RTSPServer:
        self.procs.append(subprocess.Popen(
            ["rtsp-server-perl", "--clientport", str(self.client_port),
             "--serverport", str(self.source_port), "--client_listen_address", "127.0.0.1",
             "--source_listen_address", "127.0.0.1", "--rtp_start_port", str(_free_port()),
             "--loglevel", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.source_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        self.procs.append(subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
             "-i", "testsrc=size=160x120:rate=10", "-c:v", "libx264", "-preset", "ultrafast",
             "-tune", "zerolatency", "-g", "10", "-bf", "0", "-f", "rtsp",
             "-rtsp_transport", "udp", f"rtsp://127.0.0.1:{self.source_port}/cam"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        time.sleep(1.5)  # the publisher's ANNOUNCE/RECORD before a client asks
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


@pytest.fixture()
def rtsp() -> Iterator[RTSPServer]:
    server = RTSPServer()
    yield server
    server.stop()


def test_rtsp_source_reads_and_survives_a_server_restart(rtsp: RTSPServer, event_log) -> None:
    rtsp.start()
    config = SourceConfig(rtsp_transport="udp", live_buffer=64, read_timeout_s=2.0,
                          open_timeout_s=3.0, max_retries=20, backoff_initial_s=0.3,
                          backoff_max_s=1.0)  # fmt: skip
    source = open_source(rtsp.url, "cam", config, on_event=event_log)
    assert (source.info.kind, source.info.width, source.info.height) == ("live", 160, 120)
    got = []
    outage = None
    for frame in source.frames():
        got.append(frame)
        if len(got) == 15:
            rtsp.stop()  # the server goes away mid-stream...
            time.sleep(1.0)
            outage = time.monotonic()
            rtsp.start()  # ...and comes back on the same ports
        if len(got) == 40:
            break
    source.close()
    assert outage is not None
    assert [f.index for f in got] == list(range(40))  # indices continue across the restart
    assert got[0].image.shape == (120, 160, 3) and float(got[0].image.std()) > 10
    pts = np.array([f.pts for f in got])
    assert np.all(np.diff(pts) > 0)
    kinds = event_log.kinds
    assert kinds[0] == "source.connected" and kinds.count("source.connected") >= 2
    assert "source.disconnected" in kinds and "source.reconnecting" in kinds
    second = [e for e in event_log.events if e.kind == "source.connected"][1]
    assert second.message.startswith("reconnected") and 15 <= second.frame_index <= 40
