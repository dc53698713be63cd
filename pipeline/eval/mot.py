"""Run dinotrack and box-only peer trackers on a MOTChallenge sequence and score them side by side.

A sequence folder holds ``seqinfo.ini``, ``gt/gt.txt`` and its frames, either in ``img1/`` (the
MOTChallenge layout) or as a single video file in the folder. Detections (MOT ``det.txt`` rows) are
given to every tracker as the same per-frame observations; dinotrack also sees the frames' patch
features, which is where its appearance cues come from.

Peers come from the ``trackers`` package (Roboflow: ByteTrack, SORT, OC-SORT, BoT-SORT); when it is
not installed the peers are skipped and the report says so.
"""

from __future__ import annotations

import configparser
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.eval.metrics import evaluate, load_mot
from pipeline.eval.noise import write_mot
from pipeline.models.base import Backbone, Segmenter
from pipeline.types import Frame, Observation, TrackState

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
PEERS = ("bytetrack", "sort", "ocsort", "botsort")


@dataclass
class MotSequence:
    """Where a MOTChallenge sequence's parts are.

    Attributes:
        name: Sequence name (``seqinfo.ini`` name, else the folder name).
        frames_uri: ``img1/`` folder or the video file.
        gt_path: ``gt/gt.txt``.
        length: Number of frames (``seqLength``), or None when not declared.
        fps: ``frameRate``, default 30.
        size: (width, height) from ``imWidth``/``imHeight``, or None when not declared.
    """

    name: str
    frames_uri: Path
    gt_path: Path
    length: int | None
    fps: float
    size: tuple[int, int] | None


def read_sequence(seq_dir: str | Path) -> MotSequence:
    """Find a sequence's frames, ground truth and metadata.

    Raises:
        FileNotFoundError: no ``gt/gt.txt``, or neither ``img1/`` nor a video file in the folder.
    """
    seq = Path(seq_dir)
    if not seq.is_dir():
        raise FileNotFoundError(f"MOT sequence folder {seq} does not exist")
    info: dict[str, str] = {}
    ini = seq / "seqinfo.ini"
    if ini.is_file():
        parser = configparser.ConfigParser()
        parser.read(ini)
        if parser.has_section("Sequence"):
            info = dict(parser["Sequence"])
    gt = seq / "gt" / "gt.txt"
    if not gt.is_file():
        raise FileNotFoundError(f"{seq} has no gt/gt.txt; a MOTChallenge sequence folder needs one")
    img_dir = seq / info.get("imdir", "img1")
    if img_dir.is_dir() and any(img_dir.iterdir()):
        frames_uri = img_dir
    else:
        videos = sorted(p for p in seq.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise FileNotFoundError(
                f"{seq} has neither an {img_dir.name}/ folder of frames nor a video file "
                f"({', '.join(VIDEO_SUFFIXES)}); put the frames or the video in the folder"
            )
        frames_uri = videos[0]
    size = None
    if "imwidth" in info and "imheight" in info:
        size = (int(info["imwidth"]), int(info["imheight"]))
    return MotSequence(
        name=info.get("name", seq.name),
        frames_uri=frames_uri,
        gt_path=gt,
        length=int(info["seqlength"]) if "seqlength" in info else None,
        fps=float(info.get("framerate", 30)),
        size=size,
    )


def detections_by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    """MOT det rows grouped by 0-based frame index as (N, 5) ``x0, y0, x1, y1, score``."""
    out: dict[int, np.ndarray] = {}
    if len(rows) == 0:
        return out
    frames = rows[:, 0].astype(int) - 1
    boxes = np.column_stack(
        [rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5], rows[:, 6]]
    )
    for f in np.unique(frames):
        out[int(f)] = boxes[frames == f]
    return out


class PeerRunner:
    """One box-only tracker of the ``trackers`` package, fed frame by frame."""

    def __init__(self, name: str, fps: float) -> None:
        import trackers

        self.name = name
        makers: dict[str, Callable[[], Any]] = {
            "bytetrack": lambda: trackers.ByteTrackTracker(frame_rate=fps),
            "sort": lambda: trackers.SORTTracker(frame_rate=fps),
            "ocsort": lambda: trackers.OCSORTTracker(frame_rate=fps),
            "botsort": lambda: trackers.BoTSORTTracker(frame_rate=fps),
        }
        if name not in makers:
            raise ValueError(f"unknown peer tracker {name!r}; known: {', '.join(makers)}")
        self.tracker = makers[name]()
        self.uses_frame = name == "botsort"  # camera motion compensation looks at the frame
        self.rows: list[list[float]] = []
        self.seconds = 0.0

    def step(self, frame_index: int, image: np.ndarray, dets: np.ndarray) -> None:
        import supervision as sv

        t0 = time.perf_counter()
        detections = sv.Detections(
            xyxy=dets[:, :4].astype(np.float32).reshape(-1, 4),
            confidence=dets[:, 4].astype(np.float32),
            class_id=np.zeros(len(dets), dtype=int),
        )
        frame = image[:, :, ::-1].copy() if self.uses_frame else None  # OpenCV order
        out = (
            self.tracker.update(detections, frame=frame)
            if frame is not None
            else (self.tracker.update(detections))
        )
        self.seconds += time.perf_counter() - t0
        for box, tid in zip(out.xyxy, out.tracker_id, strict=True):
            if tid < 0:
                continue
            x0, y0, x1, y1 = (float(v) for v in box)
            self.rows.append(
                [frame_index + 1, int(tid) + 1, x0, y0, x1 - x0, y1 - y0, 1, -1, -1, -1]
            )


def _dinotrack_rows(
    frame_index: int, result: Any, update: Any, n_dets: int, matched_only: bool = False
) -> list[list]:
    """MOT rows of one frame: confirmed tracks with a published box (the tracker's motion-model box
    for tracks that follow detections), or with ``matched_only`` only those matched to one of the
    ``n_dets`` detections in this frame, as the box-only trackers report."""
    # observation indices past the detections are the tracker's own re-detections
    matched = {tid for oi, tid in {**update.matched, **update.recovered}.items() if oi < n_dets}
    rows = []
    for track in result.tracks:
        if track.state != TrackState.ACTIVE or track.box is None:
            continue
        if matched_only and track.id not in matched:
            continue
        x0, y0, x1, y1 = (float(v) for v in track.box)
        rows.append([frame_index + 1, track.id, x0, y0, x1 - x0, y1 - y0, track.score, -1, -1, -1])
    return rows


def run_mot(
    seq_dir: str | Path,
    detections_path: str | Path,
    out_path: str | Path,
    backbone: Backbone,
    segmenter: Segmenter,
    tracker_config: Any = None,
    peers: tuple[str, ...] = PEERS,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Track a MOT sequence with dinotrack and the peers on the same detections; score them all.

    Args:
        seq_dir: MOTChallenge sequence folder.
        detections_path: MOT ``det.txt`` (frame, -1, x, y, w, h, score, ...).
        out_path: Where dinotrack's tracks are written (MOTChallenge txt); a peer's go next to it
            as ``<stem>.<peer>.txt``.
        backbone: Patch-feature backbone for dinotrack.
        segmenter: Segmenter for dinotrack (``none`` is the feature segmenter).
        tracker_config: ``pipeline.tracking.tracker.TrackerConfig`` (None: defaults).
        peers: Peer trackers to run (empty: none).
        progress: Called with each processed frame index.

    Returns:
        ``{"sequence", "frames", "detections", "backbone", "segmenter", "results": {tracker:
        metrics + fps + path}, "notes": [...]}``; metrics in percent (HOTA, DetA, AssA, IDF1, MOTA,
        ...) and counts. ``dinotrack`` reports every confirmed track the published results give a
        box (see `IdentityManager.published_box`: the filtered box where a detection matched,
        a short constant-velocity coast where detections missed it); ``dinotrack-matched`` only the
        tracks matched to a detection in the frame, as the box-only peers report (file
        ``<stem>.matched.txt``).
    """
    from pipeline.sources import open_source
    from pipeline.tracking.config import TrackerConfig
    from pipeline.tracking.tracker import Tracker

    seq = read_sequence(seq_dir)
    out_path = Path(out_path)
    dets = detections_by_frame(load_mot(detections_path))
    gt = load_mot(seq.gt_path)
    notes: list[str] = []
    runners: list[PeerRunner] = []
    for name in peers:
        try:
            runners.append(PeerRunner(name, seq.fps))
        except ImportError as exc:
            notes.append(f"peer {name} skipped: the 'trackers' package is not importable ({exc}); "
                         'install it with `pip install -e ".[bench]"`')  # fmt: skip
            break
    tracker = Tracker(seq.name, tracker_config or TrackerConfig(), segmenter, backbone.name)
    rows: list[list] = []
    matched_rows: list[list] = []
    track_seconds = 0.0
    n = 0
    source = open_source(str(seq.frames_uri), seq.name)
    try:
        frame: Frame
        for frame in source.frames():
            if seq.length is not None and frame.index >= seq.length:
                break
            d = dets.get(frame.index, np.zeros((0, 5)))
            t0 = time.perf_counter()
            features = backbone.features([frame.image])[0]
            observations = [
                Observation(box=tuple(float(v) for v in b[:4]), score=float(b[4])) for b in d
            ]
            result = tracker.step(frame, features, observations)
            track_seconds += time.perf_counter() - t0
            update = tracker.identities.last_update
            rows += _dinotrack_rows(frame.index, result, update, len(d))
            matched_rows += _dinotrack_rows(frame.index, result, update, len(d), matched_only=True)
            for runner in runners:
                runner.step(frame.index, frame.image, d)
            n += 1
            if progress is not None:
                progress(frame.index)
    finally:
        source.close()
    num_frames = seq.length or n
    results: dict[str, Any] = {}
    fps = round(n / max(track_seconds, 1e-9), 2)
    write_mot(np.array(rows, dtype=np.float64).reshape(-1, 10), out_path)
    results["dinotrack"] = {
        **evaluate(gt, load_mot(out_path), num_frames).to_dict(percent=True),
        "fps": fps,
        "path": str(out_path),
    }
    path = out_path.with_name(f"{out_path.stem}.matched.txt")
    write_mot(np.array(matched_rows, dtype=np.float64).reshape(-1, 10), path)
    results["dinotrack-matched"] = {
        **evaluate(gt, load_mot(path), num_frames).to_dict(percent=True),
        "fps": fps,
        "path": str(path),
    }
    for runner in runners:
        path = out_path.with_name(f"{out_path.stem}.{runner.name}.txt")
        write_mot(np.array(runner.rows, dtype=np.float64).reshape(-1, 10), path)
        results[runner.name] = {
            **evaluate(gt, load_mot(path), num_frames).to_dict(percent=True),
            "fps": round(n / max(runner.seconds, 1e-9), 2),
            "path": str(path),
        }
    return {
        "sequence": seq.name,
        "frames": n,
        "detections": str(detections_path),
        "backbone": backbone.name,
        "segmenter": getattr(segmenter, "name", type(segmenter).__name__),
        "results": results,
        "notes": notes,
    }
