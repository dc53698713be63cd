"""VOT-LT precision, recall, F and the absence figures on hand-made reports."""

from __future__ import annotations

import pytest

from pipeline.eval.longterm import (
    Report,
    absences,
    box_overlap,
    list_sequences,
    read_groundtruth,
    read_predictions,
    score_folder,
    score_sequence,
    write_predictions,
)

B = (10.0, 10.0, 10.0, 10.0)
HALF = (15.0, 10.0, 10.0, 10.0)  # IoU with B: 50 / 150 = 1/3


def test_box_overlap() -> None:
    assert box_overlap(B, B) == 1.0
    assert box_overlap(B, HALF) == pytest.approx(1 / 3)
    assert box_overlap(B, None) == 0.0
    assert box_overlap(B, (100.0, 100.0, 5.0, 5.0)) == 0.0


def test_precision_recall_f_by_hand() -> None:
    # frame 0 is the prompt (not scored); 1, 2 present; 3 absent; 4 present
    gts = [B, B, B, None, B]
    reports = [Report(B, 1.0), Report(B, 0.9), Report(HALF, 0.5), Report(B, 0.4), Report(None)]
    s = score_sequence(reports, gts)
    # tau 0.4: Pr = (1 + 1/3 + 0) / 3 = 4/9, Re = (1 + 1/3) / 3 = 4/9   -> F = 4/9
    # tau 0.5: Pr = (1 + 1/3) / 2 = 2/3,     Re = 4/9                   -> F = 8/15, the best
    # tau 0.9: Pr = 1,                       Re = 1/3                   -> F = 1/2
    assert s["F"] == pytest.approx(8 / 15)
    assert (s["Pr"], s["Re"], s["tau"]) == (pytest.approx(2 / 3), pytest.approx(4 / 9), 0.5)
    assert s["absent"] == 1 and s["absent_shown"] == 1.0
    assert s["frames"] == 5


def test_nothing_reported_scores_zero() -> None:
    s = score_sequence([Report(B, 1.0), Report(None), Report(None)], [B, B, None])
    assert (s["F"], s["Pr"], s["Re"], s["tau"]) == (0.0, 0.0, 0.0, None)
    assert s["absent_shown"] == 0.0


def test_frame_zero_is_not_scored() -> None:
    s = score_sequence([Report(None), Report(B, 1.0)], [B, B])
    assert s["F"] == 1.0


def test_absences_and_reacquisition() -> None:
    gts = [B, None, None, B, B, B, None, B, B]
    assert absences(gts) == [(1, 3), (6, 7)]
    assert absences([B, None]) == []  # no return: not an absence to re-acquire
    reports = [Report(B, 1.0)] + [Report(None)] * 8
    reports[5] = Report(B, 1.0)  # 2 frames after the first return
    s = score_sequence(reports, gts, reacquire_within=3)
    assert s["absences"] == 2
    assert s["reacquired"] == 1
    assert s["reacquire_frames"] == [2, None]
    assert score_sequence(reports, gts, reacquire_within=2)["reacquired"] == 0
    # a box at IoU 1/3 counts at the 0.3 default, not at 0.5
    reports[7] = Report(HALF, 1.0)
    assert score_sequence(reports, gts)["reacquired"] == 2
    assert score_sequence(reports, gts, reacquire_iou=0.5)["reacquired"] == 1


def test_files_round_trip_and_folder_scoring(tmp_path) -> None:
    seq = tmp_path / "seq"
    (seq / "img").mkdir(parents=True)
    (seq / "img" / "00000.jpg").write_bytes(b"")
    (seq / "groundtruth.txt").write_text("10,10,10,10\nNaN,NaN,NaN,NaN\n15,10,10,10\n")
    assert read_groundtruth(seq / "groundtruth.txt") == [B, None, HALF]
    reports = [Report(B, 1.0), Report(None), Report(HALF, 0.75)]
    pred = tmp_path / "pred"
    pred.mkdir()
    write_predictions(pred / "seq.txt", reports)
    assert read_predictions(pred / "seq.txt") == reports
    assert list_sequences(tmp_path) == ["seq"]
    result = score_folder(tmp_path, ["seq"], pred)
    assert result["sequences"]["seq"]["F"] == 1.0
    assert result["mean"]["F"] == 1.0
    assert result["mean"]["absences"] == 1 and result["mean"]["reacquired"] == 1


def test_bad_files_say_what_is_wrong(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="ground truth"):
        read_groundtruth(tmp_path / "none.txt")
    (tmp_path / "gt.txt").write_text("NaN,NaN,NaN,NaN\n1,1,2,2\n")
    with pytest.raises(ValueError, match="first frame has no box"):
        read_groundtruth(tmp_path / "gt.txt")
    (tmp_path / "gt.txt").write_text("1,1,2\n")
    with pytest.raises(ValueError, match="line 1: expected 4"):
        read_groundtruth(tmp_path / "gt.txt")
    with pytest.raises(ValueError, match="frames for"):
        score_sequence([Report(B, 1.0)], [B, B])
