"""Long-term single-object tracking evaluation: the VOT-LT protocol (Lukežič et al., 2018, "Now you
see me: evaluating performance in long-term visual tracking").

A sequence folder holds ``img/00000.jpg...`` and ``groundtruth.txt`` (one ``x,y,w,h`` line per
frame, top-left and size in pixels; ``NaN,NaN,NaN,NaN`` where the target is absent or mostly
hidden). The tracker is prompted with the first line's box at frame 0.

Per frame a tracker reports a box with a confidence, or nothing. For a threshold τ, the frames
reported with confidence ≥ τ count:

* tracking precision Pr(τ): mean IoU over those frames (a box on a frame where the target is absent
  scores 0);
* tracking recall Re(τ): sum of their IoU over the frames where the target is present, divided by
  the number of such frames;
* F = max over τ of 2·Pr(τ)·Re(τ) / (Pr(τ) + Re(τ)), τ running over the reported confidences.

Frame 0 (the prompt) is not scored. Also per sequence: the share of absent frames on which a box is
shown, and the absences (runs of absent frames followed by a return) after which the target is
re-acquired: a box with IoU ≥ 0.3 within 30 frames of the return (from the return frame on).

Predictions travel as text, one line per frame, ``x,y,w,h,score`` or ``nan,nan,nan,nan,nan`` for
no box (`write_predictions`), so that trackers run elsewhere (the OpenCV peers, which need their
own environment: ``benchmarks/longterm_peers.py``) are scored by the same code. Only numpy is
imported at module level for that reason.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]  # x, y, w, h (top-left, size), pixels

REACQUIRE_IOU = 0.3
REACQUIRE_WITHIN = 30


@dataclass(frozen=True)
class Report:
    """What a tracker reported on one frame: a box (x, y, w, h) and its confidence, or no box."""

    box: Box | None
    score: float = 0.0


def _parse_line(line: str, path: Path, n: int, fields: int) -> list[float]:
    parts = line.replace("\t", ",").replace(" ", ",").split(",")
    parts = [p for p in parts if p]
    if len(parts) != fields:
        raise ValueError(f"{path} line {n}: expected {fields} comma-separated values, got {line!r}")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"{path} line {n}: not numbers: {line!r}") from None


def read_groundtruth(path: str | Path) -> list[Box | None]:
    """The boxes of a ``groundtruth.txt``: (x, y, w, h) per frame, None where absent (NaN)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground truth {path} not found: expected one x,y,w,h line a frame")
    boxes: list[Box | None] = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        v = _parse_line(line, path, n, 4)
        absent = any(math.isnan(x) for x in v) or v[2] <= 0 or v[3] <= 0
        boxes.append(None if absent else (v[0], v[1], v[2], v[3]))
    if not boxes or boxes[0] is None:
        raise ValueError(f"{path}: the first frame has no box, and it is the prompt")
    return boxes


def write_predictions(path: str | Path, reports: Sequence[Report]) -> None:
    """One ``x,y,w,h,score`` line per frame, ``nan`` x5 where no box was reported."""
    lines = []
    for r in reports:
        if r.box is None:
            lines.append("nan,nan,nan,nan,nan")
        else:
            lines.append(",".join(f"{v:.2f}" for v in r.box) + f",{r.score:.4f}")
    Path(path).write_text("\n".join(lines) + "\n")


def read_predictions(path: str | Path) -> list[Report]:
    """What `write_predictions` wrote."""
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        v = _parse_line(line, path, n, 5)
        if any(math.isnan(x) for x in v[:4]):
            out.append(Report(None))
        else:
            out.append(Report((v[0], v[1], v[2], v[3]), 0.0 if math.isnan(v[4]) else v[4]))
    return out


def box_overlap(a: Box | None, b: Box | None) -> float:
    """IoU of two (x, y, w, h) boxes; 0 when either is missing or empty."""
    if a is None or b is None:
        return 0.0
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = max(a[2], 0.0) * max(a[3], 0.0) + max(b[2], 0.0) * max(b[3], 0.0) - inter
    return inter / union if union > 0 else 0.0


def absences(gts: Sequence[Box | None]) -> list[tuple[int, int]]:
    """Runs of absent frames followed by a return: (first absent frame, return frame)."""
    runs, start = [], None
    for t, g in enumerate(gts):
        if g is None and start is None:
            start = t
        elif g is not None and start is not None:
            runs.append((start, t))
            start = None
    return runs


def score_sequence(
    reports: Sequence[Report],
    gts: Sequence[Box | None],
    reacquire_iou: float = REACQUIRE_IOU,
    reacquire_within: int = REACQUIRE_WITHIN,
) -> dict[str, Any]:
    """VOT-LT precision, recall and F of one sequence, and the absence figures (module docstring).

    Returns:
        ``F``, ``Pr``, ``Re`` (at the best threshold), ``tau`` (that threshold), ``frames``,
        ``absent`` (absent frames scored), ``absent_shown`` (share of them with a box; None when
        there is none), ``absences``, ``reacquired`` (how many of them), ``reacquire_frames``
        (frames from each return to the first IoU ≥ ``reacquire_iou``, None when not within
        ``reacquire_within``).
    """
    if len(reports) != len(gts):
        raise ValueError(f"{len(reports)} reported frames for {len(gts)} ground-truth frames")
    scored = range(1, len(gts))
    ious = np.array([box_overlap(reports[t].box, gts[t]) for t in scored])
    shown = np.array([reports[t].box is not None for t in scored], bool)
    conf = np.array([reports[t].score if reports[t].box is not None else -np.inf for t in scored])
    present = np.array([gts[t] is not None for t in scored], bool)
    n_present = int(present.sum())
    best = {"F": 0.0, "Pr": 0.0, "Re": 0.0, "tau": None}
    for tau in np.unique(conf[shown]):
        sel = shown & (conf >= tau)
        pr = float(ious[sel].mean())
        re = float(ious[sel & present].sum() / n_present) if n_present else 0.0
        f = 2 * pr * re / (pr + re) if pr + re > 0 else 0.0
        if f > best["F"]:
            best = {"F": f, "Pr": pr, "Re": re, "tau": float(tau)}
    absent = ~present
    delays: list[int | None] = []
    for _, back in absences(gts):
        window = range(back, min(back + reacquire_within, len(gts)))
        hit = next(
            (t - back for t in window if box_overlap(reports[t].box, gts[t]) >= reacquire_iou),
            None,
        )
        delays.append(hit)
    return {
        **best,
        "frames": len(gts),
        "absent": int(absent.sum()),
        "absent_shown": float(shown[absent].mean()) if absent.any() else None,
        "absences": len(delays),
        "reacquired": sum(d is not None for d in delays),
        "reacquire_frames": delays,
    }


def mean_scores(per_seq: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Means over sequences of F, Pr, Re and (where the sequences report them) the times; the
    totals of absences and re-acquisitions."""
    keys = ["F", "Pr", "Re", "seconds_per_frame"]
    mean: dict[str, Any] = {}
    for k in keys:
        vals = [s[k] for s in per_seq.values() if s.get(k) is not None]
        if vals:
            mean[k] = float(np.mean(vals))
    shown = [s["absent_shown"] for s in per_seq.values() if s.get("absent_shown") is not None]
    mean["absent_shown_max"] = float(max(shown)) if shown else None
    mean["absences"] = sum(s["absences"] for s in per_seq.values())
    mean["reacquired"] = sum(s["reacquired"] for s in per_seq.values())
    return mean


def list_sequences(root: str | Path, sequences_file: str | Path | None = None) -> list[str]:
    """Sequence names: from a text file (one a line, # comments), else every folder of ``root``
    holding ``groundtruth.txt``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"long-term root {root} not found: give a folder of sequences")
    if sequences_file is not None:
        from pipeline.eval.davis import read_sequence_list

        names = read_sequence_list(Path(sequences_file))
    else:
        names = sorted(p.name for p in root.iterdir() if (p / "groundtruth.txt").is_file())
    if not names:
        raise ValueError(f"no sequences under {root}: expected <name>/img/ and groundtruth.txt")
    for n in names:
        if not (root / n / "img").is_dir():
            raise FileNotFoundError(f"sequence {n!r}: {root / n / 'img'} not found")
    return names


def sequence_images(seq_dir: str | Path) -> list[Path]:
    """A sequence's frames, ``img/*.jpg`` sorted."""
    images = sorted((Path(seq_dir) / "img").glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no .jpg frames in {Path(seq_dir) / 'img'}")
    return images


def xyxy_to_xywh(box: tuple[float, float, float, float]) -> Box:
    return (box[0], box[1], box[2] - box[0], box[3] - box[1])


FeaturesOf = Callable[[int, np.ndarray], Any]


def track_sequence(
    seq_dir: str | Path,
    backbone: Any,
    segmenter: Any,
    tracker_config: Any,
    features_of: FeaturesOf | None = None,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Report], dict[str, float]]:
    """Run the tracker over one sequence, prompted with the first ground-truth box at frame 0.

    A frame's report is the prompted track's box when it is published ``active``, its confidence
    the track's score; nothing otherwise.

    Args:
        seq_dir: The sequence folder.
        backbone: Feature backbone (``features([image])``, ``name``).
        segmenter: Segmenter given to the tracker (resolves the box prompt).
        tracker_config: `TrackerConfig`.
        features_of: ``(frame index, image) -> FeatureMap`` in place of the backbone (a cache).
        max_frames: Only the first this many frames.
        progress: Called with (frames done, frames) after each frame.

    Returns:
        Reports per frame and timings: seconds per frame in the backbone (when it ran) and in the
        tracker, frame 0 excluded.
    """
    from PIL import Image

    from pipeline.prompts import BoxPrompt
    from pipeline.tracking.tracker import Tracker
    from pipeline.types import Frame, TrackState

    seq_dir = Path(seq_dir)
    images = sequence_images(seq_dir)[:max_frames]
    x, y, w, h = read_groundtruth(seq_dir / "groundtruth.txt")[0]
    tracker = Tracker(seq_dir.name, tracker_config, segmenter, backbone.name)
    tracker.prompts.add([BoxPrompt(box=(x, y, x + w, y + h), frame=0)])
    target: int | None = None
    reports: list[Report] = []
    t_backbone = t_tracker = 0.0
    for i, path in enumerate(images):
        image = np.array(Image.open(path).convert("RGB"))
        t0 = time.perf_counter()
        features = features_of(i, image) if features_of else backbone.features([image])[0]
        t1 = time.perf_counter()
        result = tracker.step(Frame(seq_dir.name, i, float(i), time.time(), image), features)
        t2 = time.perf_counter()
        if i == 0:
            target = result.tracks[0].id if result.tracks else None
        else:
            t_backbone += t1 - t0
            t_tracker += t2 - t1
        track = result.track(target) if target is not None else None
        if track is not None and track.state == TrackState.ACTIVE and track.box is not None:
            reports.append(Report(xyxy_to_xywh(track.box), float(track.score)))
        else:
            reports.append(Report(None))
        if progress is not None:
            progress(i + 1, len(images))
    n = max(1, len(images) - 1)
    return reports, {"backbone_s": t_backbone / n, "tracker_s": t_tracker / n}


def run_longterm(
    root: str | Path,
    sequences: Sequence[str],
    backbone: Any,
    segmenter: Any,
    tracker_config: Any,
    out_dir: str | Path | None = None,
    features_for: Callable[[str], FeaturesOf | None] | None = None,
    max_frames: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    sequence_done: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Track and score long-term sequences.

    Args:
        root: Folder of sequences.
        sequences: Their names.
        backbone, segmenter, tracker_config: As for `track_sequence`.
        out_dir: When given, each sequence's reports go to ``out_dir/<seq>.txt``.
        features_for: Sequence name -> a ``features_of`` for `track_sequence` (a cache).
        max_frames: Only the first this many frames of each sequence.
        progress: Called with (sequence, frames done, frames) after each frame.
        sequence_done: Called with (sequence, its scores) when a sequence is scored.

    Returns:
        ``{"sequences": {seq: score_sequence(...) + times}, "mean": mean_scores(...)}``;
        ``seconds_per_frame`` is backbone plus tracker.
    """
    root = Path(root)
    per_seq: dict[str, dict[str, Any]] = {}
    for seq in sequences:
        gts = read_groundtruth(root / seq / "groundtruth.txt")[:max_frames]
        feats = features_for(seq) if features_for else None
        step = None if progress is None else (lambda d, t, seq=seq: progress(seq, d, t))
        reports, times = track_sequence(
            root / seq, backbone, segmenter, tracker_config, feats, max_frames, step
        )
        gts = gts[: len(reports)]
        per_seq[seq] = {
            **score_sequence(reports, gts),
            **times,
            "seconds_per_frame": times["backbone_s"] + times["tracker_s"],
        }
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            write_predictions(Path(out_dir) / f"{seq}.txt", reports)
        if sequence_done is not None:
            sequence_done(seq, per_seq[seq])
    return {"sequences": per_seq, "mean": mean_scores(per_seq)}


def score_folder(root: str | Path, sequences: Sequence[str], pred_dir: str | Path) -> dict:
    """Score predictions written elsewhere (``pred_dir/<seq>.txt``) against ``root``'s truth."""
    per_seq = {}
    for seq in sequences:
        gts = read_groundtruth(Path(root) / seq / "groundtruth.txt")
        per_seq[seq] = score_sequence(read_predictions(Path(pred_dir) / f"{seq}.txt"), gts)
    return {"sequences": per_seq, "mean": mean_scores(per_seq)}


def dumps(result: dict[str, Any]) -> str:
    """The result as indented JSON, F/Pr/Re in percent, figures rounded."""

    def rnd(k: str, v: Any) -> Any:
        if isinstance(v, dict):
            return {kk: rnd(kk, x) for kk, x in v.items()}
        if isinstance(v, float):
            return round(100 * v, 1) if k in ("F", "Pr", "Re") else round(v, 4)
        return v

    return json.dumps(rnd("", result), indent=1)
