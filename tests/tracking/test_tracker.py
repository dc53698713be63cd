"""The per-frame Tracker on synthetic scenes with known motion, occlusion, disappearance and return,
with real MobileNetV2 features and the real feature-only segmenter."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.masks import mask_iou, mask_to_box
from pipeline.models.config import BackboneConfig
from pipeline.models.mobilenet import MobileNetV2Backbone
from pipeline.models.registry import build_segmenter
from pipeline.tracking.config import TrackerConfig
from pipeline.tracking.tracker import Tracker
from pipeline.types import Frame, Observation, TrackState

SIZE = (192, 256)
SIDE = 40


@pytest.fixture(scope="module")
def backbone() -> MobileNetV2Backbone:
    return MobileNetV2Backbone(BackboneConfig(name="mobilenetv2-imagenet", short_side=192))


@pytest.fixture(scope="module")
def segmenter():
    return build_segmenter("none")


def scene(
    n: int, hidden: range = range(0), cross: bool = True, speed_a: int = 6
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Two textured squares on a textured background: A (red) moves right, B (blue) moves left and
    passes behind A when ``cross``; A moves ``speed_a`` pixels a frame and is absent from the
    frames in ``hidden``.

    Returns the frames and the visible masks of A and B.
    """
    h, w = SIZE
    rng = np.random.default_rng(0)
    bg = (rng.integers(0, 60, size=(h, w, 3)) + np.array([40, 90, 40])).astype(np.uint8)
    tex_a = rng.integers(0, 50, size=(SIDE, SIDE, 3)).astype(np.uint8)
    tex_b = rng.integers(0, 50, size=(SIDE, SIDE, 3)).astype(np.uint8)
    frames, masks_a, masks_b = [], [], []
    for i in range(n):
        img = bg.copy()
        a = np.zeros((h, w), bool)
        b = np.zeros((h, w), bool)
        xa, ya = 10 + speed_a * i, 60
        xb, yb = w - 10 - SIDE - 6 * i, 80 if cross else 140
        img[yb : yb + SIDE, xb : xb + SIDE] = np.array([30, 30, 200], np.uint8) + tex_b
        b[yb : yb + SIDE, xb : xb + SIDE] = True
        if i not in hidden:
            img[ya : ya + SIDE, xa : xa + SIDE] = np.array([200, 30, 30], np.uint8) + tex_a
            a[ya : ya + SIDE, xa : xa + SIDE] = True
        frames.append(img)
        masks_a.append(a)
        masks_b.append(b & ~a)
    return frames, masks_a, masks_b


def prompt(mask: np.ndarray, label: str) -> Observation:
    return Observation(mask_to_box(mask), mask, 1.0, label, origin="prompt")


def frame(i: int, img: np.ndarray) -> Frame:
    return Frame("test", i, i / 25, 1000.0 + i, img)


def test_two_objects_keep_ids_and_masks_through_occlusion(backbone, segmenter) -> None:
    frames, ma, mb = scene(22)
    tracker = Tracker("test", TrackerConfig(), segmenter, backbone.name)
    ious: dict[str, list[float]] = {"a": [], "b": []}
    for i, img in enumerate(frames):
        dets = [prompt(ma[0], "a"), prompt(mb[0], "b")] if i == 0 else []
        result = tracker.step(frame(i, img), backbone.features([img])[0], dets)
        assert [t.id for t in result.tracks] == [1, 2]
        assert [t.label for t in result.tracks] == ["a", "b"]
        assert all(t.state == TrackState.ACTIVE for t in result.tracks)
        ious["a"].append(mask_iou(result.track(1).mask_array(), ma[i]))
        ious["b"].append(mask_iou(result.track(2).mask_array(), mb[i]))
        assert result.track(1).mask["size"] == list(SIZE)
    # B is up to half hidden behind A around frames 13-19: its mask shrinks with it
    assert min(ious["a"]) > 0.7 and np.mean(ious["a"]) > 0.8
    assert min(ious["b"]) > 0.7 and np.mean(ious["b"]) > 0.85
    events = tracker.pop_events()
    assert [(e.kind, e.track_id) for e in events] == [("track.started", 1), ("track.started", 2)]


def test_object_lost_when_it_vanishes_and_recovered_with_its_id(backbone, segmenter) -> None:
    hidden = range(8, 14)
    # A stands still: the identity manager matches a lost track against its last observed box
    frames, ma, mb = scene(20, hidden=hidden, cross=False, speed_a=0)
    tracker = Tracker("test", TrackerConfig(), segmenter, backbone.name)
    states = []
    for i, img in enumerate(frames):
        dets = [prompt(ma[0], "a"), prompt(mb[0], "b")] if i == 0 else []
        if i == 14:  # a detector sees A again (not a user prompt: it must be re-identified)
            dets = [Observation(mask_to_box(ma[i]), ma[i], 0.9)]
        result = tracker.step(frame(i, img), backbone.features([img])[0], dets)
        a = result.track(1)
        states.append(a.state)
        if a.state == TrackState.LOST:
            assert a.box is None and a.mask is None
        elif i >= 14 or i < 8:
            assert mask_iou(a.mask_array(), ma[i]) > 0.7
        assert mask_iou(result.track(2).mask_array(), mb[i]) > 0.8
        assert {t.id for t in result.tracks} == {1, 2}  # no new id for A
    assert states[:8] == [TrackState.ACTIVE] * 8
    assert TrackState.LOST in states[8:14]
    assert states[14:] == [TrackState.ACTIVE] * 6
    kinds = [(e.kind, e.track_id) for e in tracker.pop_events()]
    assert ("track.lost", 1) in kinds and ("track.recovered", 1) in kinds
    assert kinds.index(("track.lost", 1)) < kinds.index(("track.recovered", 1))


def test_prompt_applies_at_first_processed_frame_at_or_after_its_frame(backbone, segmenter) -> None:
    from pipeline.prompts import MaskPrompt

    frames, ma, mb = scene(12, cross=False)
    id_map = ma[3].astype(np.uint16)  # A as object 1 of a mask drawn on frame 3
    tracker = Tracker("test", TrackerConfig(), segmenter, backbone.name)
    tracker.prompts.add([MaskPrompt(id_map=id_map, frame=3, label="red")])
    for i in range(0, 12, 2):  # every other frame: frame 3 is never processed
        img = frames[i]
        result = tracker.step(frame(i, img), backbone.features([img])[0])
        if i < 4:
            assert result.tracks == []
        else:
            (track,) = result.tracks
            assert track.id == 1 and track.label == "red"
            # at frame 4 the mask is the prompt's (drawn on frame 3), then it follows A
            assert mask_iou(track.mask_array(), ma[i]) > 0.6


def test_remove_track_ends_it_and_never_reuses_its_id(backbone, segmenter) -> None:
    frames, ma, mb = scene(6, cross=False)
    tracker = Tracker("test", TrackerConfig(), segmenter, backbone.name)
    img = frames[0]
    tracker.step(frame(0, img), backbone.features([img])[0], [prompt(ma[0], "a")])
    tracker.remove_track(1)
    assert [(e.kind, e.track_id) for e in tracker.pop_events()] == [
        ("track.started", 1),
        ("track.ended", 1),
    ]
    img = frames[1]
    result = tracker.step(frame(1, img), backbone.features([img])[0], [prompt(mb[1], "b")])
    assert [t.id for t in result.tracks] == [2]
    assert tracker.propagator.object_ids == [2]
    with pytest.raises(KeyError):
        tracker.remove_track(99)


def test_checkpoint_resumes_the_same_tracks(backbone, segmenter) -> None:
    frames, ma, mb = scene(12)
    cfg = TrackerConfig()
    a = Tracker("test", cfg, segmenter, backbone.name)
    feats = [backbone.features([img])[0] for img in frames]
    for i in range(6):
        dets = [prompt(ma[0], "a"), prompt(mb[0], "b")] if i == 0 else []
        a.step(frame(i, frames[i]), feats[i], dets)
    b = Tracker("test", cfg, segmenter, backbone.name)
    b.load_state_dict(a.state_dict())
    for i in range(6, 12):
        ra = a.step(frame(i, frames[i]), feats[i])
        rb = b.step(frame(i, frames[i]), feats[i])
        assert [(t.id, t.label, t.state) for t in ra.tracks] == [
            (t.id, t.label, t.state) for t in rb.tracks
        ]
        for ta, tb in zip(ra.tracks, rb.tracks, strict=True):
            assert mask_iou(ta.mask_array(), tb.mask_array()) > 0.97
    with pytest.raises(ValueError, match="increasing index order"):
        b.step(frame(3, frames[3]), feats[3])


def test_lost_object_is_re_detected_by_its_looks_when_it_comes_back(backbone, segmenter) -> None:
    """No detector: the tracker looks for the lost track's prototype itself; A moved meanwhile."""
    hidden = range(8, 14)
    frames, ma, mb = scene(24, hidden=hidden, cross=False, speed_a=6)
    tracker = Tracker("test", TrackerConfig(), segmenter, backbone.name)
    states = []
    for i, img in enumerate(frames):
        dets = [prompt(ma[0], "a"), prompt(mb[0], "b")] if i == 0 else []
        result = tracker.step(frame(i, img), backbone.features([img])[0], dets)
        states.append(result.track(1).state)
        assert {t.id for t in result.tracks} == {1, 2}  # no new id for A, B kept
    assert TrackState.LOST in states[8:14]
    back = states.index(TrackState.ACTIVE, 14)
    assert back <= 16 and states[back:] == [TrackState.ACTIVE] * (24 - back)
    assert mask_iou(result.track(1).mask_array(), ma[-1]) > 0.6


def test_several_objects_leave_together_and_all_come_back_with_their_ids(backbone, segmenter):
    """Four squares vanish for six frames and come back elsewhere; with two searches a frame
    (`presence.searches_per_frame`) the four lost tracks are searched in turn, and each returns
    with its own id within three frames of coming back (searching all four in every frame, one
    frame), its mask on its own square."""
    h, w = SIZE
    rng = np.random.default_rng(1)
    bg = (rng.integers(0, 60, size=(h, w, 3)) + np.array([40, 90, 40])).astype(np.uint8)
    colours = [(200, 30, 30), (30, 30, 200), (210, 200, 30), (200, 40, 200)]
    textures = [rng.integers(0, 50, size=(SIDE, SIDE, 3)) for _ in colours]
    before = [(20, 20), (20, 150), (120, 20), (120, 150)]  # (y, x) of each square
    after = [(y + 10, x + 40) for y, x in before]
    hidden = range(8, 14)
    tracker = Tracker("test", TrackerConfig(), segmenter, backbone.name)
    states: dict[int, list[TrackState]] = {}
    for i in range(26):
        img = bg.copy()
        masks = []
        for (y, x), colour, tex in zip(
            after if i >= 14 else before, colours, textures, strict=True
        ):
            m = np.zeros((h, w), bool)
            if i not in hidden:
                img[y : y + SIDE, x : x + SIDE] = np.array(colour) + tex
                m[y : y + SIDE, x : x + SIDE] = True
            masks.append(m)
        dets = [prompt(m, str(k)) for k, m in enumerate(masks)] if i == 0 else []
        result = tracker.step(frame(i, img), backbone.features([img])[0], dets)
        assert {t.id for t in result.tracks} <= {1, 2, 3, 4}  # never a new id
        for t in result.tracks:
            states.setdefault(t.id, []).append(t.state)
    for tid, mask in zip([1, 2, 3, 4], masks, strict=True):
        seen = states[tid]
        assert TrackState.LOST in seen[8:14] and TrackState.ACTIVE not in seen[10:14]
        back = seen.index(TrackState.ACTIVE, 14)
        assert back <= 17 and seen[back:] == [TrackState.ACTIVE] * (26 - back)  # 15: every frame
        assert mask_iou(result.track(tid).mask_array(), mask) > 0.6
