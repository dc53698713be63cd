"""Draw frame results over their frames: masks, contours, boxes, ids, labels and short trails.

`Renderer` keeps per-track trails (bounded) across frames; `render_frame` draws one result for a
PNG or a live view; `render_video` writes an H.264 mp4 with PyAV, matching results to frames by
frame index. Images are HxWx3 uint8 RGB in and out.
"""

from __future__ import annotations

import colorsys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from pipeline.types import Frame, FrameResult, Track, TrackState


@dataclass(frozen=True)
class RenderConfig:
    """How results are drawn.

    Attributes:
        alpha: Opacity of the mask fill (0 = contours only, 1 = opaque).
        trail: Box centres kept and drawn per track (0 = no trails).
        max_tracks: Tracks whose trails are kept at once; the least recently seen are forgotten.
        thickness: Line thickness of boxes and contours, in pixels at 720p (scaled with the frame).
        show_tentative: Draw tentative (unconfirmed) tracks, with a thin box.
        show_score: Append the score to the id tag.
    """

    alpha: float = 0.45
    trail: int = 24
    max_tracks: int = 256
    thickness: int = 2
    show_tentative: bool = True
    show_score: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"RenderConfig.alpha={self.alpha} must be within [0, 1]")
        if self.trail < 0 or self.max_tracks < 1 or self.thickness < 1:
            raise ValueError(
                "RenderConfig needs trail >= 0, max_tracks >= 1 and thickness >= 1, got "
                f"trail={self.trail}, max_tracks={self.max_tracks}, thickness={self.thickness}"
            )


def track_color(track_id: int) -> tuple[int, int, int]:
    """A saturated RGB colour for a track id; consecutive ids get far-apart hues."""
    hue = (int(track_id) * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _text_color(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


class Renderer:
    """Draws results frame after frame, remembering the last box centres of each track.

    Trails are bounded twice: ``config.trail`` centres per track, ``config.max_tracks`` tracks
    (least recently seen dropped first); ended tracks are forgotten at once.
    """

    def __init__(self, config: RenderConfig | None = None):
        self.config = config or RenderConfig()
        self._trails: dict[int, deque[tuple[float, float]]] = {}

    @property
    def trails(self) -> dict[int, list[tuple[float, float]]]:
        """Box centres kept per track id, oldest first (in original frame pixels)."""
        return {tid: list(points) for tid, points in self._trails.items()}

    def reset(self) -> None:
        self._trails.clear()

    def draw(self, image: np.ndarray, result: FrameResult) -> np.ndarray:
        """A copy of ``image`` with ``result`` drawn on it.

        Boxes and masks are in the result's ``width`` x ``height``; they are scaled when the image
        has another size (e.g. a video decoded at a different resolution).

        Raises:
            ValueError: ``image`` is not an HxWx3 uint8 array.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"render needs an HxWx3 uint8 RGB image, got shape {image.shape} {image.dtype}"
            )
        h, w = image.shape[:2]
        sx = w / result.width if result.width else 1.0
        sy = h / result.height if result.height else 1.0
        thick = max(1, round(self.config.thickness * max(h, w) / 1280))
        canvas = np.ascontiguousarray(image).copy()
        visible = [t for t in result.tracks if self._shown(t)]
        self.remember(result)
        self._draw_masks(canvas, visible, thick)
        self._draw_trails(canvas, {t.id for t in visible}, sx, sy, thick)
        for track in visible:
            self._draw_box(canvas, track, sx, sy, thick)
        return canvas

    def _shown(self, track: Track) -> bool:
        if track.state in (TrackState.LOST, TrackState.ENDED):
            return False
        return track.state != TrackState.TENTATIVE or self.config.show_tentative

    def remember(self, result: FrameResult) -> None:
        """Add a result's box centres to the trails without drawing (e.g. to warm up trails)."""
        if self.config.trail == 0:
            return
        for track in result.tracks:
            if track.state == TrackState.ENDED:
                self._trails.pop(track.id, None)
                continue
            if track.box is None or not self._shown(track):
                continue
            x0, y0, x1, y1 = track.box
            points = self._trails.pop(track.id, None) or deque(maxlen=self.config.trail)
            points.append(((x0 + x1) / 2, (y0 + y1) / 2))
            self._trails[track.id] = points  # re-inserted: dict order = least recently seen first
        while len(self._trails) > self.config.max_tracks:
            self._trails.pop(next(iter(self._trails)))

    def _draw_masks(self, canvas: np.ndarray, tracks: list[Track], thick: int) -> None:
        h, w = canvas.shape[:2]
        for track in tracks:
            mask = track.mask_array()
            if mask is None:
                continue
            if mask.shape != (h, w):
                mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if rows.size == 0:
                continue
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            crop = mask[y0:y1, x0:x1].astype(np.uint8)  # work on the mask's bounding box only
            roi = canvas[y0:y1, x0:x1]
            color = track_color(track.id)
            if self.config.alpha > 0:
                fill = np.empty_like(roi)
                fill[:] = color
                blended = cv2.addWeighted(roi, 1 - self.config.alpha, fill, self.config.alpha, 0)
                np.copyto(roi, blended, where=crop[..., None].astype(bool))
            contours, _ = cv2.findContours(
                crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(int(x0), int(y0))
            )
            cv2.drawContours(canvas, contours, -1, color, thick, cv2.LINE_AA)

    def _draw_trails(
        self, canvas: np.ndarray, ids: set[int], sx: float, sy: float, thick: int
    ) -> None:
        for tid, points in self._trails.items():
            if tid not in ids or len(points) < 2:
                continue
            pts = [(round(x * sx), round(y * sy)) for x, y in points]
            color = track_color(tid)
            n = len(pts)
            for i in range(1, n):  # older segments thinner
                width = max(1, round(thick * (0.5 + i / n)))
                cv2.line(canvas, pts[i - 1], pts[i], color, width, cv2.LINE_AA)

    def _draw_box(self, canvas: np.ndarray, track: Track, sx: float, sy: float, thick: int) -> None:
        if track.box is None:
            return
        x0, y0, x1, y1 = track.box
        p0, p1 = (round(x0 * sx), round(y0 * sy)), (round(x1 * sx), round(y1 * sy))
        color = track_color(track.id)
        tentative = track.state == TrackState.TENTATIVE
        cv2.rectangle(canvas, p0, p1, color, 1 if tentative else thick, cv2.LINE_AA)
        tag = f"#{track.id}"
        if track.label:
            tag += f" {track.label}"
        if self.config.show_score:
            tag += f" {track.score:.2f}"
        if tentative:
            tag += " ?"
        scale = max(0.4, canvas.shape[0] / 720 * 0.6)
        (tw, th), base = cv2.getTextSize(tag, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        tx = min(max(p0[0], 0), max(canvas.shape[1] - tw - 4, 0))
        ty = p0[1] - 4 if p0[1] - th - base - 4 >= 0 else p1[1] + th + 4
        ty = min(ty, canvas.shape[0] - base - 1)
        cv2.rectangle(canvas, (tx, ty - th - 3), (tx + tw + 4, ty + base), color, cv2.FILLED)
        cv2.putText(
            canvas, tag, (tx + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, _text_color(color), 1,
            cv2.LINE_AA,
        )  # fmt: skip


def render_frame(
    image: np.ndarray | Frame, result: FrameResult, renderer: Renderer | None = None
) -> np.ndarray:
    """``result`` drawn over ``image`` (an RGB array or a `Frame`); RGB uint8 out.

    Pass a `Renderer` kept across calls to get trails; without one, no trail is drawn.
    """
    pixels = image.image if isinstance(image, Frame) else image
    return (renderer or Renderer()).draw(pixels, result)


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG.

    Raises:
        OSError: The file cannot be written (e.g. its folder does not exist).
    """
    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write PNG '{path}' — check that its folder exists and is writable")
    return path


class FrameProvider(Protocol):
    """Anything with ``frames(start)``: a `pipeline.sources.VideoSource`."""

    def frames(self, start: int = 0) -> Iterator[Frame]: ...


def match_frames(
    results: Iterable[FrameResult], frames: Iterable[Frame] | FrameProvider
) -> Iterator[tuple[Frame, FrameResult]]:
    """Pairs of (frame, result) with the same frame index, in order.

    Both inputs must be in increasing frame index order; frames without a result and results
    without a frame are skipped. A source (``frames(start)``) is read from the first result's index.
    """
    result_iter = iter(results)
    first = next(result_iter, None)
    if first is None:
        return
    if hasattr(frames, "frames") and callable(frames.frames):
        frame_iter = iter(frames.frames(start=first.frame_index))
    else:
        frame_iter = iter(frames)  # type: ignore[arg-type]
    result: FrameResult | None = first
    frame = next(frame_iter, None)
    while result is not None and frame is not None:
        if frame.index < result.frame_index:
            frame = next(frame_iter, None)
        elif frame.index > result.frame_index:
            result = next(result_iter, None)
        else:
            yield frame, result
            result = next(result_iter, None)
            frame = next(frame_iter, None)


def render_video(
    results: Iterable[FrameResult],
    frames: Iterable[Frame] | FrameProvider,
    out_path: Path,
    config: RenderConfig | None = None,
    crf: int = 23,
    preset: str = "veryfast",
) -> int:
    """Write the frames that have a result, with the result drawn on them, to an H.264 mp4.

    Frames keep their presentation times (so a strided run plays at true speed). Odd frame sizes
    are padded by one pixel (H.264 4:2:0 needs even sizes).

    Args:
        results: Published results in frame order (e.g. from
            `pipeline.outputs.redis_streams.read_frames`).
        frames: The source's frames in order, or a source (read from the first result's index).
        out_path: The .mp4 file to write.
        config: How to draw.
        crf: x264 quality (lower is better; 18 is visually lossless).
        preset: x264 speed preset.

    Returns:
        The number of frames written.

    Raises:
        ValueError: ``out_path`` is not an .mp4 file.
    """
    import av

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".mp4":
        raise ValueError(f"render_video writes .mp4 files; got '{out_path}' — name it *.mp4")
    renderer = Renderer(config)
    time_base = Fraction(1, 1000)
    written, last_pts = 0, -1
    container = av.open(str(out_path), mode="w")
    try:
        stream = None
        for frame, result in match_frames(results, frames):
            image = _even(renderer.draw(frame.image, result))
            if stream is None:
                stream = container.add_stream("libx264", rate=30)
                stream.width, stream.height = image.shape[1], image.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.time_base = time_base
                stream.codec_context.time_base = time_base
                stream.options = {"crf": str(crf), "preset": preset}
            video_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            pts = max(round(frame.pts * 1000), last_pts + 1)
            video_frame.pts, video_frame.time_base, last_pts = pts, time_base, pts
            for packet in stream.encode(video_frame):
                container.mux(packet)
            written += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    finally:
        container.close()
    if written == 0:
        out_path.unlink(missing_ok=True)
    return written


def _even(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
