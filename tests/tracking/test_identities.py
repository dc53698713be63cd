"""Identity manager on synthetic scenes: boxes with prototypes that move, cross, hide and return."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.tracking.config import (
    AssociationConfig,
    IdentityConfig,
    LifecycleConfig,
    MotionConfig,
    ReidConfig,
)
from pipeline.tracking.lifecycle import IdentityManager
from pipeline.tracking.records import TrackedObject
from pipeline.types import Observation, TrackState

DIM = 32


def _prototypes(n: int, seed: int = 0) -> list[np.ndarray]:
    """Well separated unit vectors (one per object)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    return [q[:, i].astype(np.float32) for i in range(n)]


def _noisy(v: np.ndarray, rng: np.random.Generator, amount: float = 0.05) -> np.ndarray:
    w = v + rng.normal(0, amount / np.sqrt(DIM), size=v.shape).astype(np.float32)
    return w / np.linalg.norm(w)


def _box(cx: float, cy: float, w: float = 40, h: float = 80) -> tuple[float, float, float, float]:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _step(
    manager: IdentityManager,
    frame: int,
    objects: dict[str, tuple | None],
    protos: dict[str, np.ndarray],
    rng: np.random.Generator,
    tracked_ids: dict[str, int] | None = None,
):
    """Feed one frame: visible objects become observations (shuffled); objects already tracked
    are reported by "propagation" with a high score when visible and 0 when hidden."""
    names = [n for n, b in objects.items() if b is not None]
    rng.shuffle(names)
    observations = [Observation(box=objects[n], prototype=_noisy(protos[n], rng)) for n in names]
    tracked = []
    for name, tid in (tracked_ids or {}).items():
        box = objects.get(name)
        if manager.state(tid) in (TrackState.TENTATIVE, TrackState.ACTIVE):
            tracked.append(
                TrackedObject(tid, None, box, 0.9 if box is not None else 0.0, protos[name])
            )
    update = manager.update(frame, tracked, observations)
    ids = {}
    for oi, tid in {**update.matched, **update.born, **update.recovered}.items():
        ids[names[oi]] = tid
    return update, ids


def test_ids_survive_crossing_objects() -> None:
    """Two objects walk through each other; each keeps its id through the overlap."""
    rng = np.random.default_rng(1)
    protos = dict(zip("ab", _prototypes(2), strict=True))
    manager = IdentityManager(IdentityConfig(lifecycle=LifecycleConfig(confirm_frames=2)))
    first: dict[str, int] = {}
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    for f in range(40):
        objects = {"a": _box(50 + 6 * f, 100), "b": _box(290 - 6 * f, 104)}
        _, ids = _step(manager, f, objects, protos, rng, first)
        for name, tid in ids.items():
            first.setdefault(name, tid)
            seen[name].add(tid)
    assert seen == {"a": {first["a"]}, "b": {first["b"]}}
    assert first["a"] != first["b"]
    assert manager.state(first["a"]) == TrackState.ACTIVE


def test_occluded_object_is_lost_then_recovered_with_its_id() -> None:
    rng = np.random.default_rng(2)
    protos = dict(zip("ab", _prototypes(2), strict=True))
    manager = IdentityManager(
        IdentityConfig(lifecycle=LifecycleConfig(confirm_frames=2, lost_timeout_frames=50))
    )
    ids: dict[str, int] = {}
    lost_at = recovered_at = None
    for f in range(40):
        hidden = 10 <= f < 22
        objects = {
            "a": None if hidden else _box(60 + 3 * f, 100),  # reappears further right
            "b": _box(400, 300),
        }
        update, seen = _step(manager, f, objects, protos, rng, ids)
        for name, tid in seen.items():
            assert ids.setdefault(name, tid) == tid, f"{name} changed id at frame {f}"
        if ids.get("a") in update.lost:
            lost_at = f
        if ids.get("a") in update.recovered.values():
            recovered_at = f
    assert (lost_at, recovered_at) == (10, 22)
    kinds = [(e.kind, e.track_id) for e in manager.pop_events()]
    a = ids["a"]
    assert [k for k, t in kinds if t == a] == ["track.started", "track.lost", "track.recovered"]
    assert manager.pop_events() == []


def test_reid_rejects_a_different_object_in_the_same_place() -> None:
    """A lost track is not given to a new object that looks different, even where it vanished."""
    rng = np.random.default_rng(3)
    protos = dict(zip("ab", _prototypes(2), strict=True))
    manager = IdentityManager(IdentityConfig(lifecycle=LifecycleConfig(confirm_frames=1)))
    _, ids = _step(manager, 0, {"a": _box(100, 100)}, protos, rng)
    update, _ = _step(manager, 1, {}, protos, rng, ids)
    assert update.lost == [ids["a"]]
    update, new = _step(manager, 2, {"b": _box(100, 100)}, protos, rng, ids)
    assert update.recovered == {} and new["b"] != ids["a"]
    assert manager.state(ids["a"]) == TrackState.LOST


def test_tentative_confirmed_after_confirm_frames_and_dropped_when_unconfirmed() -> None:
    rng = np.random.default_rng(4)
    protos = dict(zip("ab", _prototypes(2), strict=True))
    manager = IdentityManager(
        IdentityConfig(lifecycle=LifecycleConfig(confirm_frames=3, tentative_max_misses=1))
    )
    ids: dict[str, int] = {}
    states = []
    for f in range(4):
        objects = {"a": _box(100 + 2 * f, 100), "b": _box(300, 300) if f == 0 else None}
        _, seen = _step(manager, f, objects, protos, rng, ids)
        for k, v in seen.items():
            ids.setdefault(k, v)
        states.append(manager.state(ids["a"]))
    assert states == [TrackState.TENTATIVE, TrackState.TENTATIVE, TrackState.ACTIVE] + [
        TrackState.ACTIVE
    ]
    # "b" was seen once: dropped after tentative_max_misses + 1 frames, without events.
    assert manager.state(ids["b"]) == TrackState.ENDED
    events = manager.pop_events()
    assert [(e.kind, e.track_id, e.frame_index) for e in events] == [("track.started", ids["a"], 2)]


def test_lost_track_ends_after_timeout_and_ids_are_never_reused() -> None:
    rng = np.random.default_rng(5)
    protos = dict(zip("ab", _prototypes(2), strict=True))
    manager = IdentityManager(
        IdentityConfig(lifecycle=LifecycleConfig(confirm_frames=1, lost_timeout_frames=5)), "cam"
    )
    _, ids = _step(manager, 0, {"a": _box(100, 100)}, protos, rng)
    ended_at = None
    for f in range(1, 10):
        update, _ = _step(manager, f, {}, protos, rng, ids)
        if update.ended:
            ended_at = f
            assert update.ended == [ids["a"]]
    assert ended_at == 6  # lost at 1, timeout 5 frames
    assert manager.state(ids["a"]) == TrackState.ENDED
    assert manager.live_ids() == [] and manager.state_dict()["tracks"] == []
    # The same object coming back now is a new track with a new id.
    _, again = _step(manager, 10, {"a": _box(100, 100)}, protos, rng)
    assert again["a"] > ids["a"]
    events = manager.pop_events()
    assert [e.kind for e in events] == [
        "track.started",
        "track.lost",
        "track.ended",
        "track.started",
    ]
    assert {e.source_id for e in events} == {"cam"}
    with pytest.raises(KeyError, match="never given out"):
        manager.state(99)


def test_prompts_always_start_confirmed_tracks() -> None:
    manager = IdentityManager()
    box = _box(100, 100)
    first = manager.update(0, [], [Observation(box=box, label="dog", origin="prompt")])
    tid = first.born[0]
    assert manager.state(tid) == TrackState.ACTIVE and manager.label(tid) == "dog"
    tracked = [TrackedObject(tid, None, box, 0.9, None)]
    second = manager.update(1, tracked, [Observation(box=box, origin="prompt")])
    assert second.matched == {} and list(second.born) == [0]
    assert second.born[0] != tid and manager.state(second.born[0]) == TrackState.ACTIVE


def test_propagation_keeps_an_undetected_track_active_until_it_fades() -> None:
    manager = IdentityManager(
        IdentityConfig(lifecycle=LifecycleConfig(confirm_frames=1, lost_score=0.3))
    )
    tid = manager.update(0, [], [Observation(box=_box(50, 50))]).born[0]
    for f, score in enumerate([0.8, 0.6, 0.4], start=1):
        update = manager.update(f, [TrackedObject(tid, None, _box(50, 50), score, None)], [])
        assert update.lost == [] and manager.state(tid) == TrackState.ACTIVE
    update = manager.update(4, [TrackedObject(tid, None, _box(50, 50), 0.2, None)], [])
    assert update.lost == [tid]


def test_mask_iou_decides_between_overlapping_boxes() -> None:
    """Two observations share one box; each goes to the track whose propagated mask it overlaps."""
    h, w = 60, 60
    left = np.zeros((h, w), bool)
    left[10:50, 10:30] = True
    right = np.zeros((h, w), bool)
    right[10:50, 30:50] = True
    left_box, right_box = (10.0, 10.0, 30.0, 50.0), (30.0, 10.0, 50.0, 50.0)
    manager = IdentityManager(IdentityConfig(lifecycle=LifecycleConfig(confirm_frames=1)))
    births = [Observation(box=left_box, mask=left), Observation(box=right_box, mask=right)]
    born = manager.update(0, [], births).born
    tracked = [
        TrackedObject(born[0], left, left_box, 0.9, None),
        TrackedObject(born[1], right, right_box, 0.9, None),
    ]
    union = (10.0, 10.0, 50.0, 50.0)  # box IoU 0.5 with either track: only the masks tell
    observations = [Observation(box=union, mask=right), Observation(box=union, mask=left)]
    update = manager.update(1, tracked, observations)
    assert update.matched == {0: born[1], 1: born[0]}


def test_gallery_is_bounded_and_state_dict_round_trips() -> None:
    rng = np.random.default_rng(6)
    protos = dict(zip("ab", _prototypes(2), strict=True))
    config = IdentityConfig(
        lifecycle=LifecycleConfig(confirm_frames=1),
        reid=ReidConfig(gallery_size=3, gallery_interval=1),
    )
    manager = IdentityManager(config, "cam")
    ids: dict[str, int] = {}
    for f in range(12):
        objects = {"a": _box(100 + 4 * f, 100), "b": None if f >= 8 else _box(300, 200)}
        _, seen = _step(manager, f, objects, protos, rng, ids)
        for k, v in seen.items():
            ids.setdefault(k, v)
    state = json.loads(json.dumps(manager.state_dict()))
    assert all(len(t["gallery"]) <= 3 for t in state["tracks"])
    restored = IdentityManager(config, "cam")
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    assert restored.state(ids["b"]) == TrackState.LOST
    # Both continue identically: "b" comes back and is recovered by both.
    decisions = []
    for m in (manager, restored):
        update, seen = _step(
            m, 12, {"a": _box(148, 100), "b": _box(300, 200)}, protos, np.random.default_rng(7), ids
        )
        decisions.append((update.recovered, update.matched, update.born, seen))
    assert decisions[0] == decisions[1]
    assert decisions[0][3] == ids


def test_remove_ends_a_track_and_keeps_its_id_retired() -> None:
    manager = IdentityManager(IdentityConfig(lifecycle=LifecycleConfig(confirm_frames=1)), "cam")
    tid = manager.update(0, [], [Observation(box=_box(50, 50))]).born[0]
    assert manager.remove(tid, frame_index=0) is True
    assert manager.state(tid) == TrackState.ENDED and manager.remove(tid) is False
    assert [(e.kind, e.message) for e in manager.pop_events()][-1] == ("track.ended", "removed")
    assert manager.update(1, [], [Observation(box=_box(50, 50))]).born[0] == tid + 1


def test_published_box_filters_detections_coasts_one_miss_then_hides() -> None:
    """A track that follows detections publishes its motion-model box: the alpha-beta filtered box
    where a detection matched, the constant-velocity prediction for ``coast_frames`` frames whose
    detections miss it, then no box until a detection matches it again."""
    cfg = IdentityConfig(
        motion=MotionConfig(box_smoothing=0.5, velocity_momentum=0.5),
        lifecycle=LifecycleConfig(confirm_frames=1),
    )
    manager = IdentityManager(cfg)
    size = (480, 640)
    other = Observation(box=_box(500, 300))  # keeps every frame a frame with detections
    update = manager.update(0, [], [Observation(box=_box(100, 100)), other])
    tid = update.born[0]
    assert manager.published_box(tid, 0, size, None) == _box(100, 100)
    # measured at x=110: predicted 100 (no velocity yet), filtered centre 105, velocity 0.5 * 10
    tracked = [TrackedObject(tid, None, _box(90, 100), 0.9, None)]
    manager.update(1, tracked, [Observation(box=_box(110, 100)), other])
    assert manager.published_box(tid, 1, size, _box(90, 100)) == pytest.approx(_box(105, 100))
    # missed once: the prediction (105 + 5), not the propagated box; missed twice: not visible
    manager.update(2, tracked, [other])
    assert manager.published_box(tid, 2, size, _box(90, 100)) == pytest.approx(_box(110, 100))
    manager.update(3, tracked, [other])
    assert manager.state(tid) == TrackState.ACTIVE
    assert manager.published_box(tid, 3, size, _box(90, 100)) is None
    # a frame without any detection: the propagated box stands in
    manager.update(4, tracked, [])
    assert manager.published_box(tid, 4, size, _box(90, 100)) == _box(90, 100)


def test_coasted_box_is_not_published_past_the_image_border() -> None:
    # measured boxes taken as they are, velocity = last residual: exact constant velocity
    cfg = IdentityConfig(
        motion=MotionConfig(coast_frames=3, box_smoothing=1.0, velocity_momentum=0.0),
        lifecycle=LifecycleConfig(confirm_frames=1),
    )
    manager = IdentityManager(cfg)
    size = (480, 640)
    other = Observation(box=_box(300, 300))
    tid = manager.update(0, [], [Observation(box=_box(40, 100)), other]).born[0]
    for f, x in enumerate([30, 20, 10], start=1):  # walking out on the left, 10 px a frame
        manager.update(f, [], [Observation(box=_box(x, 100)), other])
    assert manager.published_box(tid, 3, size, None) == pytest.approx(_box(10, 100))
    manager.update(4, [], [other])  # predicted x0 -20, x1 20: half inside
    assert manager.published_box(tid, 4, size, None) == pytest.approx(_box(0, 100))
    manager.update(5, [], [other])  # predicted x0 -30, x1 10: a quarter inside
    assert manager.published_box(tid, 5, size, None) is None


def test_tracks_without_detections_publish_the_propagated_box() -> None:
    """Prompt-only tracks (as on DAVIS) keep the propagated box, detections of others or not."""
    manager = IdentityManager()
    box = _box(100, 100)
    tid = manager.update(0, [], [Observation(box=box, origin="prompt")]).born[0]
    moved = _box(120, 100)
    tracked = [TrackedObject(tid, None, moved, 0.9, None)]
    manager.update(1, tracked, [Observation(box=_box(400, 300))])
    assert manager.published_box(tid, 1, (480, 640), moved) == moved
    manager.update(2, tracked, [])
    assert manager.published_box(tid, 2, (480, 640), moved) == moved
    state = manager.state_dict()
    again = IdentityManager()
    again.load_state_dict(json.loads(json.dumps(state)))
    assert again.state_dict() == state


def _box_mask(box: tuple[float, float, float, float], shape=(240, 320)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])] = True
    return mask


@pytest.mark.parametrize(("weight", "swapped"), [(0.5, True), (0.0, False)])
def test_propagated_masks_decide_box_detections_the_motion_model_would_swap(
    weight: float, swapped: bool
) -> None:
    """Two people cross: by their motion predictions each detection belongs to the track it came
    from, but the propagated masks say the two passed each other; the box's IoU with the masks
    (``box_mask_weight``) gives each detection to the track whose pixels it holds."""
    manager = IdentityManager(
        IdentityConfig(
            association=AssociationConfig(box_mask_weight=weight),
            lifecycle=LifecycleConfig(confirm_frames=1),
        )
    )
    first = [Observation(box=_box(100, 100)), Observation(box=_box(140, 100))]
    born = manager.update(0, [], first).born
    t1, t2 = born[0], born[1]
    tracked = [
        TrackedObject(t1, _box_mask(_box(150, 100)), _box(150, 100), 0.9, None),
        TrackedObject(t2, _box_mask(_box(110, 100)), _box(110, 100), 0.9, None),
    ]
    dets = [Observation(box=_box(110, 100)), Observation(box=_box(150, 100))]
    update = manager.update(1, tracked, dets)
    assert update.matched == ({0: t2, 1: t1} if swapped else {0: t1, 1: t2})


@pytest.mark.parametrize(("image_size", "recovered"), [(None, True), ((480, 640), False)])
def test_a_track_that_walked_out_is_not_given_the_next_person_coming_in(
    image_size: tuple[int, int] | None, recovered: bool
) -> None:
    """Lost at the left border, its prediction three quarters outside the image: a newcomer's box
    that overlaps that prediction starts a new track instead of taking the old id (here the
    track is kept lost, ``end_outside`` off, to test the recovery rule alone)."""
    cfg = IdentityConfig(
        motion=MotionConfig(box_smoothing=1.0, velocity_momentum=0.0, end_outside=False),
        lifecycle=LifecycleConfig(confirm_frames=1),
    )
    manager = IdentityManager(cfg)
    other = Observation(box=_box(300, 300))
    first = [Observation(box=_box(22, 100)), other]
    tid = manager.update(0, [], first, image_size).born[0]
    for f, x in enumerate([18, 14, 10], start=1):  # 4 px a frame to the left
        manager.update(f, [], [Observation(box=_box(x, 100)), other], image_size)
    for f in range(4, 8):
        manager.update(f, [], [other], image_size)
    assert manager.state(tid) == TrackState.LOST
    # predicted at frame 8: centre 10 - 4 * 5 = -10, box x -30..10; the newcomer -20..20
    update = manager.update(8, [], [Observation(box=_box(0, 100)), other], image_size)
    assert (update.recovered == {0: tid}) == recovered
    assert (0 in update.born) != recovered


@pytest.mark.parametrize(("end_outside", "ended_at"), [(True, 6), (False, None)])
def test_a_track_whose_prediction_walks_out_of_the_image_ends(
    end_outside: bool, ended_at: int | None
) -> None:
    """Walking left at 4 px a frame, last detected with its box x 10 - 20 .. 10 + 20: unmatched,
    its prediction is 65% inside at frame 4, 55% at 5, 45% at 6: it ends at frame 6 (less than
    ``coast_min_inside`` 0.5 inside), and a newcomer over that prediction then starts a new
    track. Without the rule it is only lost (after ``max_unmatched_frames``) and stays."""
    cfg = IdentityConfig(
        motion=MotionConfig(box_smoothing=1.0, velocity_momentum=0.0, end_outside=end_outside),
        lifecycle=LifecycleConfig(confirm_frames=1),
    )
    manager = IdentityManager(cfg)
    size = (480, 640)
    other = Observation(box=_box(300, 300))
    born = manager.update(0, [], [Observation(box=_box(22, 100)), other], size).born
    tid, other_id = born[0], born[1]
    for f, x in enumerate([18, 14, 10], start=1):
        manager.update(f, [], [Observation(box=_box(x, 100)), other], size)
    ended = None
    for f in range(4, 8):
        update = manager.update(f, [], [other], size)
        if tid in update.ended:
            ended = f
    assert ended == ended_at
    assert manager.state(tid) == (TrackState.ENDED if end_outside else TrackState.LOST)
    if end_outside:
        events = [e for e in manager.pop_events() if e.track_id == tid]
        assert events[-1].kind == "track.ended"
        assert events[-1].message == "left the image"
    assert manager.state(other_id) == TrackState.ACTIVE


@pytest.mark.parametrize(("height_weight", "keeps_ids"), [(0.0, False), (0.5, True)])
def test_box_height_keeps_nearly_concentric_people_apart(
    height_weight: float, keeps_ids: bool
) -> None:
    """One person in front of another: nearly concentric boxes that differ mostly in height. Box
    IoU alone (0.684 + 0.720 against 0.727 + 0.671) swaps them; the height term does not."""
    cfg = IdentityConfig(
        association=AssociationConfig(height_weight=height_weight, appearance_weight=0.0),
        lifecycle=LifecycleConfig(confirm_frames=1, duplicate_iou=0.9),
    )
    manager = IdentityManager(cfg)
    tall, short = (0.0, 0.0, 40.0, 100.0), (0.0, 15.0, 40.0, 85.0)
    born = manager.update(0, [], [Observation(box=tall), Observation(box=short)]).born
    taller, shorter = (0.0, 20.0, 40.0, 110.0), (0.0, 0.0, 40.0, 72.0)  # heights 90 and 72
    update = manager.update(1, [], [Observation(box=taller), Observation(box=shorter)])
    expected = {0: born[0], 1: born[1]} if keeps_ids else {0: born[1], 1: born[0]}
    assert update.matched == expected


def test_height_change_is_the_absolute_log_ratio_of_heights() -> None:
    from pipeline.tracking.association import height_change

    assert height_change((0, 0, 10, 90), (0, 0, 10, 100)) == pytest.approx(np.log(100 / 90))
    assert height_change((0, 0, 10, 100), (0, 0, 10, 90)) == pytest.approx(np.log(100 / 90))
    assert height_change((0, 0, 10, 0), (0, 0, 10, 90)) == 0.0


def test_track_height_is_a_slow_average_of_observed_heights() -> None:
    """The first match sets the track's height (the birth box stands in before that), later ones
    move it by ``1 - height_momentum``."""
    manager = IdentityManager(
        IdentityConfig(
            association=AssociationConfig(height_momentum=0.9),
            lifecycle=LifecycleConfig(confirm_frames=1),
        )
    )
    tid = manager.update(0, [], [Observation(box=(0.0, 0.0, 40.0, 100.0))]).born[0]
    manager.update(1, [], [Observation(box=(0.0, 0.0, 40.0, 120.0))])
    assert manager._tracks[tid].height == pytest.approx(120.0)
    manager.update(2, [], [Observation(box=(0.0, 0.0, 40.0, 100.0))])
    assert manager._tracks[tid].height == pytest.approx(0.9 * 120.0 + 0.1 * 100.0)
