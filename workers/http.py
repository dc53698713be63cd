"""A small web view of the worker's sources, served from a thread (stdlib ``http.server``).

Routes:

- ``/``: the sources (Redis keys ``dinotrack:*:state``) with status, frames, fps, backbone and
  last error; the page reloads itself every 2 s.
- ``/source/<id>``: a live view of one source: the latest published frame drawn over the source
  video's frame of the same index (`pipeline.outputs.render`), refreshed in the page.
- ``/source/<id>/latest.jpg``: that image as one JPEG.
- ``/source/<id>/mjpeg``: the same as an MJPEG stream (``multipart/x-mixed-replace``; for VLC,
  ffplay or an ``<img>``), a new part whenever a new frame is published.
- ``/api/sources`` and ``/api/sources/<id>``: the states as JSON.
- ``/healthz``: ``ok``.

The source video is read from the path in the state hash's ``source`` field. That field comes
from Redis (a job, or whoever can write there), so it is read only under the worker's confinement
(``worker.allowed_roots``, `pipeline.confine`), as a job's source is: a path outside those folders
is never opened (nor tested for existence); the page and ``/api/sources/<id>`` say so
(``video_refused``). When the video cannot be read (outside the folders, a live stream, a file on
another machine) the overlay is drawn on a grey canvas of the frame's size, with a note saying why.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import cv2
import numpy as np
import redis

from pipeline.confine import Confinement, Refused
from pipeline.outputs.redis_streams import connect
from pipeline.types import Frame, FrameResult
from pipeline.wire import (
    STATE_KEYS,
    decode_frame_result,
    decode_state,
    frames_key,
    source_id_of_state_key,
    state_key,
)

log = logging.getLogger("dinotrack.http")

MAX_OPEN_VIDEOS = 8
"""Source videos kept open at once for the live views (least recently used closed first)."""
MAX_DECODE_AHEAD = 50
"""Frames a live view decodes forward to reach the next published one; further, it seeks."""


class _VideoReader:
    """Frames of one source video by index: reads forward when it can, seeks when it must."""

    def __init__(self, uri: str, source_id: str):
        from pipeline.sources import open_source

        self.uri = uri
        self._source = open_source(uri, source_id)
        self._frames: Iterator[Frame] | None = None
        self._last: Frame | None = None
        self.lock = threading.Lock()

    def frame(self, index: int) -> Frame | None:
        if self._last is not None and self._last.index == index:
            return self._last
        behind = None if self._last is None else index - self._last.index
        if self._frames is None or behind is None or not 0 < behind <= MAX_DECODE_AHEAD:
            self._frames = self._source.frames(start=index)
        for frame in self._frames:
            self._last = frame
            if frame.index >= index:
                return frame if frame.index == index else None
        self._frames = None
        return None

    def close(self) -> None:
        self._source.close()


class Dashboard:
    """What the pages show, read from Redis; shared by the request threads."""

    def __init__(self, client: redis.Redis, allowed: Confinement, trail: int = 24):
        self.client = client
        self.allowed = allowed
        self.trail = trail
        self.stopping = threading.Event()
        self._videos: OrderedDict[str, _VideoReader] = OrderedDict()
        self._videos_lock = threading.Lock()

    def source_ids(self) -> list[str]:
        keys = self.client.scan_iter(match=STATE_KEYS, count=500)
        return sorted({source_id_of_state_key(key) for key in keys})

    def state(self, source_id: str) -> dict[str, Any] | None:
        raw = self.client.hgetall(state_key(source_id))
        if not raw:
            return None
        state = {"source_id": source_id, **decode_state(raw)}
        if refused := self.video_refused(state.get("source")):
            state["video_refused"] = refused
        return state

    def video_refused(self, uri: Any) -> str | None:
        """Why the video at ``uri`` may not be read for the live view (None: it may, or there is
        nothing to read: no source, or a live stream)."""
        from pipeline.sources import is_live

        if not uri or not isinstance(uri, str) or is_live(uri):
            return None
        try:
            self.allowed.source(uri)
        except Refused as exc:
            return f"the live view does not read it: {exc}"
        return None

    def states(self) -> list[dict[str, Any]]:
        return [s for s in (self.state(i) for i in self.source_ids()) if s is not None]

    def latest_results(self, source_id: str, count: int) -> list[FrameResult]:
        """The last ``count`` published results, oldest first."""
        entries = self.client.xrevrange(frames_key(source_id), count=count)
        return [decode_frame_result(fields) for _, fields in reversed(entries)]

    def latest_index(self, source_id: str) -> int | None:
        entries = self.client.xrevrange(frames_key(source_id), count=1)
        return int(entries[0][0].decode().split("-")[0]) if entries else None

    def latest_image(self, source_id: str) -> np.ndarray | None:
        """The latest result drawn over its video frame (RGB), or None before the first frame."""
        from pipeline.outputs.render import RenderConfig, Renderer

        results = self.latest_results(source_id, max(1, self.trail))
        if not results:
            return None
        renderer = Renderer(RenderConfig(trail=self.trail))
        for earlier in results[:-1]:
            renderer.remember(earlier)
        result = results[-1]
        image, note = self._video_frame(source_id, result)
        canvas = renderer.draw(image, result)
        if note:
            cv2.putText(
                canvas, note[:80], (8, canvas.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (255, 255, 255), 1, cv2.LINE_AA,
            )  # fmt: skip
        return canvas

    def latest_jpeg(self, source_id: str, quality: int = 85) -> bytes | None:
        image = self.latest_image(source_id)
        if image is None:
            return None
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise RuntimeError(f"JPEG encoding of source '{source_id}' failed")
        return buf.tobytes()

    def _video_frame(self, source_id: str, result: FrameResult) -> tuple[np.ndarray, str | None]:
        from pipeline.sources import SourceError, is_live

        blank = np.full((max(result.height, 2), max(result.width, 2), 3), 64, np.uint8)
        uri_raw = self.client.hget(state_key(source_id), "source")
        uri = uri_raw.decode() if isinstance(uri_raw, bytes) else uri_raw
        if not uri:
            return blank, "no source video recorded in the state hash"
        if is_live(uri):
            return blank, "live source: frames are not kept"
        if self.video_refused(uri):  # never opened, never looked for
            return blank, "source outside the worker's allowed folders: not read"
        if not Path(uri).exists():
            return blank, f"source video not found here: {uri}"
        try:
            reader = self._reader(source_id, uri)
            with reader.lock:
                frame = reader.frame(result.frame_index)
        except (SourceError, OSError) as exc:
            return blank, f"cannot read {uri}: {exc}"
        if frame is None:
            return blank, f"frame {result.frame_index} not in {uri}"
        return frame.image, None

    def _reader(self, source_id: str, uri: str) -> _VideoReader:
        with self._videos_lock:
            reader = self._videos.get(source_id)
            if reader is not None and reader.uri != uri:
                self._videos.pop(source_id).close()
                reader = None
            if reader is None:
                reader = _VideoReader(uri, source_id)
                self._videos[source_id] = reader
                while len(self._videos) > MAX_OPEN_VIDEOS:
                    self._videos.popitem(last=False)[1].close()
            self._videos.move_to_end(source_id)
            return reader

    def close(self) -> None:
        self.stopping.set()
        with self._videos_lock:
            for reader in self._videos.values():
                reader.close()
            self._videos.clear()
        self.client.close()


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}
a{color:#7cf}table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #333;
text-align:left}.failed{color:#f66}.running{color:#6f6}.finished{color:#aaa}img{max-width:100%}
"""


def _page(title: str, body: str, head: str = "") -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style>{head}</head><body>{body}</body></html>"
    ).encode()


def _fmt(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def index_page(states: list[dict[str, Any]]) -> bytes:
    rows = []
    for s in states:
        sid = s["source_id"]
        frames = _fmt(s.get("frames_done"))
        if s.get("total"):
            frames += f" / {_fmt(s['total'])}"
        status = _fmt(s.get("status"))
        rows.append(
            f"<tr id='source-{html.escape(sid, quote=True)}'>"
            f"<td><a href='/source/{quote(sid, safe='')}'>{html.escape(sid)}</a></td>"
            f"<td class='{status}'>{status}</td><td>{frames}</td><td>{_fmt(s.get('fps'))}</td>"
            f"<td>{_fmt(s.get('backbone'))}</td><td>{_fmt(s.get('last_error'))}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>source</th><th>status</th><th>frames</th><th>fps</th>"
        f"<th>backbone</th><th>last error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p id='empty'>No sources yet: start one with <code>dinotrack submit</code>.</p>"
    )
    return _page(
        "dinotrack sources",
        f"<h1>dinotrack sources</h1>{table}",
        head="<meta http-equiv='refresh' content='2'>",
    )


def source_page(source_id: str) -> bytes:
    q = quote(source_id, safe="")
    body = f"""<p><a href="/">all sources</a></p><h1>{html.escape(source_id)}</h1>
<p id="state">loading...</p>
<img id="live" src="/source/{q}/latest.jpg" alt="latest frame of {html.escape(source_id)}">
<p><a href="/source/{q}/mjpeg">MJPEG stream</a> · <a href="/api/sources/{q}">JSON</a></p>
<script>
const img = document.getElementById("live"), state = document.getElementById("state");
function refresh() {{
  const next = new Image();
  next.onload = () => {{ img.src = next.src; }};
  next.src = "/source/{q}/latest.jpg?t=" + Date.now();
  fetch("/api/sources/{q}").then(r => r.json()).then(s => {{
    state.textContent = `${{s.status}} · frame ${{s.last_frame ?? "-"}} · ` +
      `${{s.frames_done ?? 0}}${{s.total ? " / " + s.total : ""}} frames · ${{s.fps ?? "-"}} fps` +
      (s.backbone ? ` · backbone ${{s.backbone}}` : "") +
      (s.last_error ? ` · error: ${{s.last_error}}` : "") +
      (s.video_refused ? ` · video not shown: ${{s.video_refused}}` : "");
  }}).catch(() => {{}});
}}
refresh();
setInterval(refresh, 1000);
</script>"""
    return _page(f"dinotrack {source_id}", body)


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        board = self.server.dashboard
        try:
            if not parts:
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", index_page(board.states()))
            elif parts == ["healthz"]:
                self._send(HTTPStatus.OK, "text/plain", b"ok")
            elif parts == ["api", "sources"]:
                self._json(board.states())
            elif len(parts) == 3 and parts[:2] == ["api", "sources"]:
                state = board.state(parts[2])
                if state is None:
                    self._not_found(f"no source '{parts[2]}'")
                else:
                    self._json(state)
            elif len(parts) == 2 and parts[0] == "source":
                if board.state(parts[1]) is None:
                    self._not_found(f"no source '{parts[1]}'")
                else:
                    self._send(HTTPStatus.OK, "text/html; charset=utf-8", source_page(parts[1]))
            elif len(parts) == 3 and parts[0] == "source" and parts[2] == "latest.jpg":
                jpeg = board.latest_jpeg(parts[1])
                if jpeg is None:
                    self._not_found(f"no frame published yet for source '{parts[1]}'")
                else:
                    self._send(HTTPStatus.OK, "image/jpeg", jpeg, cache=False)
            elif len(parts) == 3 and parts[0] == "source" and parts[2] == "mjpeg":
                if board.state(parts[1]) is None:
                    self._not_found(f"no source '{parts[1]}'")
                else:
                    self._mjpeg(parts[1])
            else:
                self._not_found(f"no page {self.path}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except redis.RedisError as exc:
            log.warning("Redis error serving %s: %s", self.path, exc)
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", f"Redis: {exc}".encode())

    def _send(self, status: HTTPStatus, ctype: str, body: bytes, cache: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if not cache:
            self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, doc: Any) -> None:
        self._send(HTTPStatus.OK, "application/json", json.dumps(doc).encode(), cache=False)

    def _not_found(self, message: str) -> None:
        self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", message.encode())

    def _mjpeg(self, source_id: str, poll_s: float = 0.1) -> None:
        board = self.server.dashboard
        self.close_connection = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        last: int | None = None
        while not board.stopping.is_set():
            index = board.latest_index(source_id)
            if index is not None and index != last:
                jpeg = board.latest_jpeg(source_id)
                if jpeg is not None:
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                    self.wfile.write(head.encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                    self.wfile.flush()
                    last = index
            board.stopping.wait(poll_s)


class DashboardServer(ThreadingHTTPServer):
    """The HTTP server; `shutdown` stops serving, ends MJPEG streams and closes videos."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], dashboard: Dashboard):
        super().__init__(address, _Handler)
        self.dashboard = dashboard
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="dinotrack-http"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.dashboard.stopping.set()
        super().shutdown()
        self.server_close()
        self.dashboard.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def start_http_server(
    redis_url: str, port: int, allowed: Confinement, host: str = "127.0.0.1"
) -> DashboardServer:
    """Serve the web view of the sources in ``redis_url`` at ``http://host:port`` (port 0: any).

    ``allowed`` is where source videos may be read for the live view (the worker's
    `workers.job_rules.confinement`): the paths come from Redis.

    Returns:
        The running server (``.url``, ``.shutdown()``).

    Raises:
        pipeline.outputs.redis_streams.RedisUnavailable: Redis cannot be reached.
        OSError: The port is taken; the message names it.
    """
    client = connect(redis_url)
    try:
        server = DashboardServer((host, port), Dashboard(client, allowed))
    except OSError as exc:
        client.close()
        raise OSError(f"cannot serve the web view on {host}:{port}: {exc} — pick another "
                      "--http-port") from exc  # fmt: skip
    log.info("web view at http://%s:%d", host, server.server_address[1])
    return server.start()
