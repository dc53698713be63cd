"""Multi-object tracking metrics: HOTA, IDF1 and CLEAR MOT (MOTA, ID switches).

Written to follow TrackEval (Luiten et al.), the reference implementation of the MOTChallenge
benchmark: boxes are matched per frame by IoU; HOTA (Luiten et al., IJCV 2021) averages
sqrt(DetA * AssA) over IoU thresholds alpha = 0.05, 0.10, ..., 0.95; IDF1 (Ristani et al., 2016)
comes from one global min-cost matching of ground-truth to predicted identities; MOTA and ID
switches (Bernardin & Stiefelhagen, 2008) prefer, in each frame, to keep the previous frame's match.

Inputs are MOTChallenge rows: ``frame, id, x, y, w, h, conf, ...`` (frame 1-based, box top-left
x, y and size in pixels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.masks import box_iou

_EPS = float(np.finfo(float).eps)
ALPHAS = np.arange(0.05, 0.99, 0.05)


@dataclass
class SequenceData:
    """Per-frame ids and IoUs of one sequence, ids renumbered 0..n-1.

    Attributes:
        gt_ids: Per frame, (G_t,) int ground-truth ids.
        pred_ids: Per frame, (P_t,) int predicted ids.
        similarity: Per frame, (G_t, P_t) box IoU.
        num_gt_ids: Distinct ground-truth ids.
        num_pred_ids: Distinct predicted ids.
    """

    gt_ids: list[np.ndarray]
    pred_ids: list[np.ndarray]
    similarity: list[np.ndarray]
    num_gt_ids: int
    num_pred_ids: int

    @property
    def num_gt_dets(self) -> int:
        return int(sum(len(g) for g in self.gt_ids))

    @property
    def num_pred_dets(self) -> int:
        return int(sum(len(p) for p in self.pred_ids))


@dataclass
class MotMetrics:
    """Scores of one sequence; ratios in [0, 1] (MOTA may be negative)."""

    HOTA: float
    DetA: float
    AssA: float
    LocA: float
    IDF1: float
    IDP: float
    IDR: float
    MOTA: float
    MOTP: float
    IDSW: int
    TP: int
    FP: int
    FN: int
    Frag: int
    num_gt_ids: int
    num_pred_ids: int

    def to_dict(self, percent: bool = False) -> dict[str, float | int]:
        """As a dict; with ``percent``, the ratios are scaled to 0-100 and rounded to 0.1."""
        d = asdict(self)
        if percent:
            for k in ("HOTA", "DetA", "AssA", "LocA", "IDF1", "IDP", "IDR", "MOTA", "MOTP"):
                d[k] = round(100.0 * d[k], 1)
        return d


def load_mot(path: str | Path) -> np.ndarray:
    """Read a MOTChallenge txt file as an (N, >=7) float array (empty file: shape (0, 7))."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MOT file {path} does not exist; pass a gt.txt or tracker output")
    text = path.read_text().strip()
    if not text:
        return np.zeros((0, 7))
    rows = [[float(v) for v in line.replace(" ", "").split(",")] for line in text.splitlines()]
    width = min(len(r) for r in rows)
    if width < 6:
        raise ValueError(f"{path}: MOT rows need at least frame,id,x,y,w,h; found {width} fields")
    arr = np.array([r[:width] for r in rows], dtype=np.float64)
    if width == 6:
        arr = np.concatenate([arr, np.ones((len(arr), 1))], axis=1)
    return arr


def prepare_sequence(
    gt: np.ndarray, pred: np.ndarray, num_frames: int | None = None
) -> SequenceData:
    """Per-frame ids and IoUs from MOT rows; ground-truth rows with conf 0 are ignored.

    Args:
        gt: Ground-truth rows (frame, id, x, y, w, h, conf, ...).
        pred: Predicted rows, same layout.
        num_frames: Length of the sequence; defaults to the last frame seen in either.
    """
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, max(np.shape(gt)[-1], 7))
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, max(np.shape(pred)[-1], 7))
    gt = gt[gt[:, 6] != 0]
    last = int(max(gt[:, 0].max(initial=0), pred[:, 0].max(initial=0)))
    n = num_frames if num_frames is not None else last
    gt_map = {v: i for i, v in enumerate(np.unique(gt[:, 1]))}
    pred_map = {v: i for i, v in enumerate(np.unique(pred[:, 1]))}
    data = SequenceData([], [], [], len(gt_map), len(pred_map))
    gt_by = _by_frame(gt)
    pred_by = _by_frame(pred)
    empty = np.zeros((0, gt.shape[1]))
    for f in range(1, n + 1):
        g = gt_by.get(f, empty)
        p = pred_by.get(f, empty)
        data.gt_ids.append(np.array([gt_map[v] for v in g[:, 1]], dtype=int))
        data.pred_ids.append(np.array([pred_map[v] for v in p[:, 1]], dtype=int))
        data.similarity.append(box_iou(_xyxy(g), _xyxy(p)))
    return data


def _by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    frames = rows[:, 0].astype(int)
    return {int(f): rows[frames == f] for f in np.unique(frames)}


def _xyxy(rows: np.ndarray) -> np.ndarray:
    b = rows[:, 2:6].copy()
    b[:, 2:] += b[:, :2]
    return b


def clear_metrics(data: SequenceData, threshold: float = 0.5) -> dict[str, float | int]:
    """CLEAR MOT: MOTA, MOTP, ID switches, fragmentations, TP/FP/FN at IoU ``threshold``."""
    tp = fp = fn = idsw = 0
    motp_sum = 0.0
    prev_id = np.full(data.num_gt_ids, np.nan)  # last tracker id each gt was matched to
    prev_step_id = np.full(data.num_gt_ids, np.nan)  # tracker id matched in the previous frame
    starts = np.zeros(data.num_gt_ids, dtype=int)  # times each gt went from untracked to tracked
    for g, p, sim in zip(data.gt_ids, data.pred_ids, data.similarity, strict=True):
        if len(g) == 0:
            fp += len(p)
            continue
        if len(p) == 0:
            fn += len(g)
            continue
        score = 1000.0 * (p[None, :] == prev_step_id[g][:, None]) + sim
        score[sim < threshold - _EPS] = 0
        rows, cols = linear_sum_assignment(-score)
        keep = score[rows, cols] > _EPS
        rows, cols = rows[keep], cols[keep]
        mg, mp = g[rows], p[cols]
        before = prev_id[mg]
        idsw += int(np.sum(~np.isnan(before) & (mp != before)))
        not_tracked = np.isnan(prev_step_id)
        prev_id[mg] = mp
        prev_step_id[:] = np.nan
        prev_step_id[mg] = mp
        starts += not_tracked & ~np.isnan(prev_step_id)
        tp += len(mg)
        fn += len(g) - len(mg)
        fp += len(p) - len(mg)
        motp_sum += float(sim[rows, cols].sum())
    frag = int(np.sum(starts[starts > 0] - 1))  # the first start of each track is no fragment
    mota = (tp - fp - idsw) / max(1, tp + fn)
    return {
        "MOTA": mota,
        "MOTP": motp_sum / max(1, tp),
        "IDSW": idsw,
        "TP": tp,
        "FP": fp,
        "FN": fn,
        "Frag": frag,
    }


def identity_metrics(data: SequenceData, threshold: float = 0.5) -> dict[str, float]:
    """IDF1, IDP, IDR from the min-cost one-to-one matching of gt ids to predicted ids."""
    n_g, n_p = data.num_gt_ids, data.num_pred_ids
    if n_g == 0 or n_p == 0:
        return {"IDF1": 0.0, "IDP": 0.0, "IDR": 0.0}
    overlap = np.zeros((n_g, n_p))
    gt_count = np.zeros(n_g)
    pred_count = np.zeros(n_p)
    for g, p, sim in zip(data.gt_ids, data.pred_ids, data.similarity, strict=True):
        rows, cols = np.nonzero(sim >= threshold - _EPS)
        np.add.at(overlap, (g[rows], p[cols]), 1)
        np.add.at(gt_count, g, 1)
        np.add.at(pred_count, p, 1)
    # Square cost over gt + dummy rows, pred + dummy columns (unmatched ids pay all their dets).
    fn = np.zeros((n_g + n_p, n_g + n_p))
    fp = np.zeros((n_g + n_p, n_g + n_p))
    fn[:n_g, n_p:] = 1e10
    fp[n_g:, :n_p] = 1e10
    fn[:n_g, :n_p] = gt_count[:, None] - overlap
    fn[np.arange(n_g), n_p + np.arange(n_g)] = gt_count
    fp[:n_g, :n_p] = pred_count[None, :] - overlap
    fp[n_g + np.arange(n_p), np.arange(n_p)] = pred_count
    rows, cols = linear_sum_assignment(fn + fp)
    idfn = float(fn[rows, cols].sum())
    idfp = float(fp[rows, cols].sum())
    idtp = float(gt_count.sum()) - idfn
    return {
        "IDF1": idtp / max(1.0, idtp + 0.5 * idfp + 0.5 * idfn),
        "IDP": idtp / max(1.0, idtp + idfp),
        "IDR": idtp / max(1.0, idtp + idfn),
    }


def hota_metrics(data: SequenceData) -> dict[str, float]:
    """HOTA, DetA, AssA, LocA, each averaged over the thresholds in `ALPHAS`."""
    n_a = len(ALPHAS)
    n_g, n_p = data.num_gt_ids, data.num_pred_ids
    tp, fn, fp = np.zeros(n_a), np.zeros(n_a), np.zeros(n_a)
    loc = np.zeros(n_a)
    # Global alignment between ids, from soft per-frame IoU-normalised similarities.
    potential = np.zeros((n_g, n_p))
    gt_count = np.zeros((n_g, 1))
    pred_count = np.zeros((1, n_p))
    for g, p, sim in zip(data.gt_ids, data.pred_ids, data.similarity, strict=True):
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        soft = np.divide(sim, denom, out=np.zeros_like(sim), where=denom > _EPS)
        potential[g[:, None], p[None, :]] += soft
        gt_count[g] += 1
        pred_count[0, p] += 1
    alignment = potential / np.maximum(gt_count + pred_count - potential, _EPS)
    matches = np.zeros((n_a, n_g, n_p))
    for g, p, sim in zip(data.gt_ids, data.pred_ids, data.similarity, strict=True):
        if len(g) == 0 or len(p) == 0:
            fn += len(g)
            fp += len(p)
            continue
        rows, cols = linear_sum_assignment(-(alignment[g[:, None], p[None, :]] * sim))
        for a, alpha in enumerate(ALPHAS):
            ok = sim[rows, cols] >= alpha - _EPS
            r, c = rows[ok], cols[ok]
            tp[a] += len(r)
            fn[a] += len(g) - len(r)
            fp[a] += len(p) - len(r)
            loc[a] += float(sim[r, c].sum())
            matches[a, g[r], p[c]] += 1
    ass = np.zeros(n_a)
    for a in range(n_a):
        m = matches[a]
        ass_iou = m / np.maximum(1.0, gt_count + pred_count - m)
        ass[a] = float((m * ass_iou).sum()) / max(1.0, tp[a])
    det = tp / np.maximum(1.0, tp + fn + fp)
    loca = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    hota = np.sqrt(det * ass)
    return {
        "HOTA": float(hota.mean()),
        "DetA": float(det.mean()),
        "AssA": float(ass.mean()),
        "LocA": float(loca.mean()),
    }


def evaluate(
    gt: np.ndarray, pred: np.ndarray, num_frames: int | None = None, threshold: float = 0.5
) -> MotMetrics:
    """All metrics of one sequence from MOT rows (see `prepare_sequence`)."""
    data = prepare_sequence(gt, pred, num_frames)
    clear = clear_metrics(data, threshold)
    ident = identity_metrics(data, threshold)
    hota = hota_metrics(data)
    return MotMetrics(
        HOTA=hota["HOTA"],
        DetA=hota["DetA"],
        AssA=hota["AssA"],
        LocA=hota["LocA"],
        IDF1=ident["IDF1"],
        IDP=ident["IDP"],
        IDR=ident["IDR"],
        MOTA=float(clear["MOTA"]),
        MOTP=float(clear["MOTP"]),
        IDSW=int(clear["IDSW"]),
        TP=int(clear["TP"]),
        FP=int(clear["FP"]),
        FN=int(clear["FN"]),
        Frag=int(clear["Frag"]),
        num_gt_ids=data.num_gt_ids,
        num_pred_ids=data.num_pred_ids,
    )


def evaluate_files(
    gt_path: str | Path, pred_path: str | Path, num_frames: int | None = None
) -> MotMetrics:
    """All metrics from a ground-truth and a tracker MOTChallenge file."""
    return evaluate(load_mot(gt_path), load_mot(pred_path), num_frames)
