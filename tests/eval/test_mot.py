"""MOT metrics against hand-computed cases, noisy detections, sequence reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.eval.metrics import ALPHAS, evaluate, evaluate_files, load_mot
from pipeline.eval.mot import detections_by_frame, read_sequence
from pipeline.eval.noise import NoiseConfig, make_noisy_detections, noisy_detections, write_mot


def _rows(*rows: tuple) -> np.ndarray:
    """MOT rows from (frame, id, x, y, w, h) tuples, conf 1."""
    return np.array([[*r, 1, -1, -1, -1] for r in rows], dtype=np.float64)


def test_perfect_tracking_scores_one() -> None:
    gt = _rows((1, 1, 0, 0, 10, 10), (1, 2, 50, 50, 10, 10), (2, 1, 2, 0, 10, 10))
    m = evaluate(gt, gt.copy())
    assert (m.HOTA, m.IDF1, m.MOTA, m.IDSW, m.FP, m.FN) == (1.0, 1.0, 1.0, 0, 0, 0)
    assert m.DetA == pytest.approx(1.0) and m.AssA == pytest.approx(1.0)


def test_id_switch_hand_computed() -> None:
    """One object, 4 frames, the tracker switches id after frame 2 (boxes exact).

    CLEAR: TP 4, IDSW 1 -> MOTA (4 - 0 - 1) / 4. IDF1: gt matched to one of two ids of 2 frames
    each -> IDTP 2, IDFP 2, IDFN 2 -> 2 / (2 + 1 + 1). HOTA: DetA 1; each match has
    A = 2 / (4 + 2 - 2) = 0.5 -> AssA 0.5 -> HOTA sqrt(0.5).
    """
    gt = _rows(*[(f, 7, 10, 10, 20, 40) for f in range(1, 5)])
    pred = gt.copy()
    pred[2:, 1] = 9
    m = evaluate(gt, pred)
    assert (m.TP, m.FP, m.FN, m.IDSW) == (4, 0, 0, 1)
    assert pytest.approx(0.75) == m.MOTA
    assert pytest.approx(0.5) == m.IDF1
    assert m.DetA == pytest.approx(1.0)
    assert m.AssA == pytest.approx(0.5)
    assert pytest.approx(np.sqrt(0.5)) == m.HOTA


def test_miss_and_false_positive_hand_computed() -> None:
    """Frame 1 right, frame 2 the box is elsewhere: TP 1, FP 1, FN 1.

    MOTA (1 - 1) / 2 = 0. IDF1 1 / (1 + 0.5 + 0.5). HOTA: DetA 1/3, AssA 1 / (2 + 2 - 1) = 1/3.
    """
    gt = _rows((1, 1, 0, 0, 10, 10), (2, 1, 0, 0, 10, 10))
    pred = _rows((1, 5, 0, 0, 10, 10), (2, 5, 100, 100, 10, 10))
    m = evaluate(gt, pred)
    assert (m.TP, m.FP, m.FN, m.IDSW) == (1, 1, 1, 0)
    assert pytest.approx(0.0) == m.MOTA
    assert pytest.approx(0.5) == m.IDF1
    assert m.DetA == pytest.approx(1 / 3)
    assert m.AssA == pytest.approx(1 / 3)
    assert pytest.approx(1 / 3) == m.HOTA


def test_hota_counts_only_thresholds_the_iou_reaches() -> None:
    """IoU 0.5: a match for the 10 thresholds 0.05..0.50, nothing for the 9 above."""
    gt = _rows((1, 1, 0, 0, 10, 10))
    pred = _rows((1, 1, 0, 0, 10, 5))
    m = evaluate(gt, pred)
    assert len(ALPHAS) == 19
    assert pytest.approx(10 / 19) == m.HOTA
    assert pytest.approx(1.0) == m.MOTA  # CLEAR's threshold 0.5 is reached


def test_gt_rows_with_zero_confidence_are_ignored() -> None:
    gt = _rows((1, 1, 0, 0, 10, 10), (1, 2, 50, 50, 10, 10))
    gt[1, 6] = 0
    m = evaluate(gt, _rows((1, 3, 0, 0, 10, 10)))
    assert (m.TP, m.FP, m.FN, m.num_gt_ids) == (1, 0, 0, 1)


def test_metrics_agree_with_trackers_package(shared_data: Path, tmp_path: Path) -> None:
    """Same numbers as the `trackers` package's TrackEval port on real MOT15 gt with a tracker
    output made of jittered, thinned and id-swapped gt."""
    evaluate_mot_sequence = pytest.importorskip("trackers.eval").evaluate_mot_sequence
    gt = load_mot(shared_data / "mot15" / "TUD-Campus" / "gt" / "gt.txt")
    gt[:, 7] = 1  # the trackers package scores class 1 (pedestrian) only; MOT15 leaves it -1
    rng = np.random.default_rng(0)
    pred = gt.copy()
    pred[:, 2:4] += rng.normal(0, 6, size=(len(pred), 2))
    swap = pred[:, 0] > 30
    pred[swap & (gt[:, 1] == 1), 1], pred[swap & (gt[:, 1] == 2), 1] = 2, 1
    pred = pred[rng.random(len(pred)) > 0.1]
    write_mot(gt, tmp_path / "gt.txt")
    write_mot(pred, tmp_path / "pred.txt")
    ours = evaluate_files(tmp_path / "gt.txt", tmp_path / "pred.txt")
    ref = evaluate_mot_sequence(
        tmp_path / "gt.txt", tmp_path / "pred.txt", metrics=["CLEAR", "HOTA", "Identity"]
    )
    assert pytest.approx(ref.HOTA.HOTA, abs=1e-6) == ours.HOTA
    assert ours.AssA == pytest.approx(ref.HOTA.AssA, abs=1e-6)
    assert pytest.approx(ref.Identity.IDF1, abs=1e-6) == ours.IDF1
    assert pytest.approx(ref.CLEAR.MOTA, abs=1e-6) == ours.MOTA
    assert ours.IDSW == ref.CLEAR.IDSW and ours.IDSW > 0


def test_noisy_detections_are_seeded_and_follow_the_rates() -> None:
    rng = np.random.default_rng(0)
    n_frames, per_frame = 200, 5
    gt = _rows(
        *[
            (f, i, 100 * i + rng.uniform(0, 5), 50, 40, 80)
            for f in range(1, n_frames + 1)
            for i in range(1, per_frame + 1)
        ]
    )
    cfg = NoiseConfig(drop_rate=0.1, jitter=0.05, fp_rate=0.05, seed=3)
    a = noisy_detections(gt, (640, 480), cfg)
    b = noisy_detections(gt, (640, 480), cfg)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, noisy_detections(gt, (640, 480), NoiseConfig(seed=4)))
    n_gt = len(gt)
    # kept ~ 90% of gt, false positives ~ 5% of gt: total ~ 95% of gt
    assert 0.92 * n_gt < len(a) < 0.98 * n_gt
    assert np.all(a[:, 1] == -1) and np.all(a[:, 6] == 1)
    assert np.all(np.diff(a[:, 0]) >= 0)
    clean = noisy_detections(gt, (640, 480), NoiseConfig(drop_rate=0, jitter=0, fp_rate=0))
    np.testing.assert_allclose(clean[:, 2:6], gt[:, 2:6])
    jittered = noisy_detections(gt, (640, 480), NoiseConfig(drop_rate=0, jitter=0.05, fp_rate=0))
    rel = (jittered[:, 4] - gt[:, 4]) / gt[:, 4]  # widths: std 5% of the width
    assert 0.04 < float(rel.std()) < 0.06


def test_noisy_detections_file_round_trip(tmp_path: Path) -> None:
    gt = _rows((1, 1, 10, 20, 30, 40), (2, 1, 12.5, 20, 30, 40))
    write_mot(gt, tmp_path / "gt.txt")
    exact = NoiseConfig(drop_rate=0.0, jitter=0.0, fp_rate=0.0)
    path = make_noisy_detections(tmp_path / "gt.txt", tmp_path / "det" / "det.txt", (99, 99), exact)
    by = detections_by_frame(load_mot(path))
    assert {f: b.tolist() for f, b in by.items()} == {
        0: [[10, 20, 40, 60, 1]],
        1: [[12.5, 20, 42.5, 60, 1]],
    }


def test_read_sequence_finds_video_and_metadata(shared_data: Path) -> None:
    seq = read_sequence(shared_data / "mot15" / "TUD-Campus")
    assert seq.name == "TUD-Campus" and seq.length == 71 and seq.fps == 25
    assert seq.size == (640, 480) and seq.frames_uri.name == "TUD-Campus.mp4"


def test_read_sequence_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gt/gt.txt"):
        read_sequence(tmp_path)
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "gt.txt").write_text("1,1,0,0,1,1,1,-1,-1,-1\n")
    with pytest.raises(FileNotFoundError, match="video file"):
        read_sequence(tmp_path)


def test_run_mot_on_a_synthetic_sequence(tmp_path: Path) -> None:
    """Two textured squares walk past each other; with exact detections dinotrack keeps both
    identities, and the peer (when the trackers package is installed) is scored beside it."""
    from PIL import Image

    from pipeline.eval.mot import run_mot
    from pipeline.models.config import BackboneConfig, SegmenterConfig
    from pipeline.models.mobilenet import MobileNetV2Backbone
    from pipeline.models.registry import build_segmenter

    seq = tmp_path / "SYN-1"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    rng = np.random.default_rng(0)
    background = rng.integers(0, 80, size=(96, 128, 3)).astype(np.uint8)
    colours = {1: (220, 40, 40), 2: (40, 60, 220)}
    rows = []
    for f in range(8):
        img = background.copy()
        for tid, (x, y) in {1: (10 + 8 * f, 20), 2: (90 - 8 * f, 50)}.items():
            img[y : y + 24, x : x + 24] = colours[tid]
            rows.append((f + 1, tid, x, y, 24, 24))
        Image.fromarray(img).save(seq / "img1" / f"{f + 1:06d}.png")
    write_mot(_rows(*rows), seq / "gt" / "gt.txt")
    (seq / "seqinfo.ini").write_text(
        "[Sequence]\nname=SYN-1\nimDir=img1\nframeRate=25\nseqLength=8\nimWidth=128\n"
        "imHeight=96\nimExt=.png\n"
    )
    det = noisy_detections(
        load_mot(seq / "gt" / "gt.txt"),
        (128, 96),
        NoiseConfig(drop_rate=0.0, jitter=0.0, fp_rate=0.0),
    )
    write_mot(det, tmp_path / "det.txt")
    backbone = MobileNetV2Backbone(
        BackboneConfig(name="mobilenetv2-imagenet", short_side=96, device="cpu")
    )
    segmenter = build_segmenter("none", SegmenterConfig(device="cpu"))
    try:
        import trackers  # noqa: F401

        peers: tuple[str, ...] = ("bytetrack",)
    except ImportError:
        peers = ()
    report = run_mot(
        seq, tmp_path / "det.txt", tmp_path / "out" / "syn.txt", backbone, segmenter, peers=peers
    )
    assert report["sequence"] == "SYN-1" and report["frames"] == 8
    ours = report["results"]["dinotrack-matched"]
    assert (ours["IDSW"], ours["num_pred_ids"], ours["FP"]) == (0, 2, 0)
    assert ours["IDF1"] > 90 and ours["MOTA"] > 85  # the first frame is tentative
    assert (tmp_path / "out" / "syn.txt").is_file()
    assert report["results"]["dinotrack"]["IDSW"] == 0
    if peers:
        assert report["results"]["bytetrack"]["IDSW"] == 0


def test_dinotrack_rows_report_published_boxes_of_confirmed_tracks() -> None:
    """Every confirmed track with a published box is a row (its own box, a coasted one included);
    matched_only keeps the tracks matched to one of the frame's detections, not re-detections."""
    from pipeline.eval.mot import _dinotrack_rows
    from pipeline.tracking.records import IdentityUpdate
    from pipeline.types import FrameResult, Track, TrackState

    tracks = [
        Track(1, None, TrackState.ACTIVE, 0.9, (10.0, 20.0, 30.0, 60.0)),  # matched to det 0
        Track(2, None, TrackState.ACTIVE, 0.5, (50.0, 20.0, 70.0, 60.0)),  # coasted
        Track(3, None, TrackState.ACTIVE, 0.7, (90.0, 20.0, 99.0, 60.0)),  # re-detected (obs 2)
        Track(4, None, TrackState.ACTIVE, 0.0, None),  # not visible
        Track(5, None, TrackState.TENTATIVE, 0.8, (0.0, 0.0, 5.0, 5.0)),
    ]
    result = FrameResult("s", 4, 0.0, 0.0, 128, 96, "b", tracks)
    update = IdentityUpdate(matched={0: 1}, recovered={2: 3})
    rows = _dinotrack_rows(4, result, update, n_dets=2)
    assert [r[:6] for r in rows] == [
        [5, 1, 10.0, 20.0, 20.0, 40.0],
        [5, 2, 50.0, 20.0, 20.0, 40.0],
        [5, 3, 90.0, 20.0, 9.0, 40.0],
    ]
    matched = _dinotrack_rows(4, result, update, n_dets=2, matched_only=True)
    assert [r[1] for r in matched] == [1]
