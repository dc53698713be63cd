"""Pair scores of observations against followed and lost tracks, one pairing at a time."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from pipeline.tracking.association import assign, pair_score, track_view
from pipeline.tracking.config import AssociationConfig, IdentityConfig, ReidConfig
from pipeline.tracking.records import Identity
from pipeline.tracking.reid import lost_pair_score
from pipeline.types import Observation, TrackState

BOX = (100.0, 100.0, 140.0, 180.0)


def _ident(state: TrackState, prototype: np.ndarray | None = None, gallery=()) -> Identity:
    return Identity(
        track_id=1,
        state=state,
        label=None,
        box=BOX,
        last_seen=0,
        observed=0,
        prototype=prototype,
        gallery=deque(gallery),
        height=80.0,
    )


def _shifted(dx: float) -> tuple[float, float, float, float]:
    return (BOX[0] + dx, BOX[1], BOX[2] + dx, BOX[3])


def test_pair_score_is_box_iou_for_a_box_only_observation_without_appearance() -> None:
    config = IdentityConfig()
    ident = _ident(TrackState.ACTIVE)
    view = track_view(ident, None, 1, config)
    assert pair_score(ident, view, Observation(box=BOX), config) == pytest.approx(1.0)
    # shifted by 10 of 40 px: IoU 30 / 50
    assert pair_score(ident, view, Observation(box=_shifted(10)), config) == pytest.approx(0.6)
    # outside the gate (centre distance > sqrt(area)): no pairing
    assert pair_score(ident, view, Observation(box=_shifted(60)), config) is None


def test_pair_score_discounts_tentative_tracks_and_ignores_redetections() -> None:
    config = IdentityConfig(association=AssociationConfig(tentative_discount=0.5))
    ident = _ident(TrackState.TENTATIVE)
    view = track_view(ident, None, 1, config)
    assert pair_score(ident, view, Observation(box=BOX), config) == pytest.approx(0.5)
    redetection = Observation(box=BOX, origin="redetection")
    assert pair_score(_ident(TrackState.ACTIVE), view, redetection, config) is None


def test_appearance_moves_the_score_between_overlap_and_resemblance() -> None:
    config = IdentityConfig()  # iou 0.8, appearance 0.2, floor 0.5
    a, b = np.eye(4, dtype=np.float32)[:2]
    ident = _ident(TrackState.ACTIVE, prototype=a)
    view = track_view(ident, None, 1, config)
    alike = pair_score(ident, view, Observation(box=_shifted(10), prototype=a), config)
    unlike = pair_score(ident, view, Observation(box=_shifted(10), prototype=b), config)
    assert alike == pytest.approx(0.8 * 0.6 + 0.2 * 1.0)
    assert unlike == pytest.approx(0.8 * 0.6)


def test_lost_pair_score_needs_the_gallery_to_agree_and_box_detections_to_overlap() -> None:
    config = IdentityConfig(reid=ReidConfig(threshold=0.9, discount=0.5))
    a, b = np.eye(4, dtype=np.float32)[:2]
    ident = _ident(TrackState.LOST, gallery=[a])
    view = track_view(ident, None, 1, config)
    far = _shifted(60)  # within the loose re-identification gate, no overlap
    # a masked observation that looks like the gallery may bring it back on looks alone
    mask = np.ones((240, 320), bool)
    looks = lost_pair_score(ident, view, Observation(far, mask, prototype=a), 1, None, config)
    assert looks == pytest.approx(0.5 * 1.0)
    # another appearance: never
    assert (
        lost_pair_score(ident, view, Observation(far, mask, prototype=b), 1, None, config) is None
    )
    # a box-only detection must overlap the prediction, unless box_by_looks
    box_only = Observation(far, prototype=a)
    assert lost_pair_score(ident, view, box_only, 1, None, config) is None
    by_looks = IdentityConfig(reid=ReidConfig(threshold=0.9, box_by_looks=True))
    assert lost_pair_score(ident, view, box_only, 1, None, by_looks) is not None


def test_assign_maximises_the_total_and_skips_infeasible_pairs() -> None:
    score = np.array([[0.9, 0.8], [0.85, -1.0], [-1.0, -1.0]])
    assert sorted(assign(score)) == [(0, 1), (1, 0)]
