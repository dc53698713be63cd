"""Classic single-object trackers on the long-term set: OpenCV CSRT, KCF, TLD and MedianFlow.

They come from ``opencv-contrib-python`` 4.10, which cannot share an environment with the project's
``opencv-python``: run this with a venv of its own that holds only it and numpy, e.g.

    python3 -m venv ../cvpeers-venv
    ../cvpeers-venv/bin/pip install "opencv-contrib-python==4.10.*" numpy
    PYTHONPATH=$PWD ../cvpeers-venv/bin/python benchmarks/longterm_peers.py --out lt-peers/

Each tracker is initialised with the first ground-truth box at frame 0; per frame it reports its box
(confidence 1) when ``update`` succeeds, else nothing. Reports go to ``OUT/<peer>/<seq>.txt`` in the
format of `pipeline.eval.longterm.write_predictions` and are scored by the same code as dinotrack
(``pipeline.eval.longterm`` imports only numpy at module level). Prints JSON: per peer and sequence
the VOT-LT figures and seconds per frame, and the best peer per sequence with their mean F.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.eval.longterm import (
    Report,
    dumps,
    list_sequences,
    mean_scores,
    read_groundtruth,
    score_sequence,
    sequence_images,
    write_predictions,
)

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "long-term"

PEERS = {
    "csrt": lambda: cv2.TrackerCSRT_create(),
    "kcf": lambda: cv2.TrackerKCF_create(),
    "tld": lambda: cv2.legacy.TrackerTLD_create(),
    "medianflow": lambda: cv2.legacy.TrackerMedianFlow_create(),
}


def run_peer(name: str, seq_dir: Path) -> tuple[list[Report], float]:
    """One peer over one sequence: its reports and seconds per frame (frame 0 excluded)."""
    images = sequence_images(seq_dir)
    x, y, w, h = read_groundtruth(seq_dir / "groundtruth.txt")[0]
    tracker = PEERS[name]()
    first = cv2.imread(str(images[0]))
    box = (int(round(x)), int(round(y)), int(round(w)), int(round(h)))
    tracker.init(first, box)
    reports = [Report((float(x), float(y), float(w), float(h)), 1.0)]
    t0 = time.perf_counter()
    for path in images[1:]:
        ok, b = tracker.update(cv2.imread(str(path)))
        ok = ok and b[2] > 0 and b[3] > 0
        reports.append(Report(tuple(float(v) for v in b), 1.0) if ok else Report(None))
    return reports, (time.perf_counter() - t0) / max(1, len(images) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--sequences", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers")
    parser.add_argument("--out", type=Path, default=None, help="folder for per-frame reports")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    names = args.sequences.split(",") if args.sequences else list_sequences(args.root)
    results: dict[str, dict] = {}
    for peer in args.peers.split(","):
        per_seq = {}
        for seq in names:
            reports, spf = run_peer(peer, args.root / seq)
            gts = read_groundtruth(args.root / seq / "groundtruth.txt")
            per_seq[seq] = {**score_sequence(reports, gts), "seconds_per_frame": spf}
            if args.out is not None:
                (args.out / peer).mkdir(parents=True, exist_ok=True)
                write_predictions(args.out / peer / f"{seq}.txt", reports)
        results[peer] = {"sequences": per_seq, "mean": mean_scores(per_seq)}
    best = {
        seq: max(((p, r["sequences"][seq]["F"]) for p, r in results.items()), key=lambda x: x[1])
        for seq in names
    }
    summary = {
        "best_per_sequence": {s: {"peer": p, "F": f} for s, (p, f) in best.items()},
        "best_mean_F": float(np.mean([f for _, f in best.values()])),
    }
    setup = {
        "opencv": cv2.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "root": str(args.root),
    }
    print(dumps({"peers": results, "summary": summary, "setup": setup}))


if __name__ == "__main__":
    main()
