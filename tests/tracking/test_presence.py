"""Presence and re-acquisition of a prompted object (`pipeline.tracking.presence`) on a generated
scene with real MobileNetV2 features: the object leaves while a distractor stays, then comes back
elsewhere and larger."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.masks import mask_iou, mask_to_box
from pipeline.models.config import BackboneConfig
from pipeline.models.mobilenet import MobileNetV2Backbone
from pipeline.models.registry import build_segmenter
from pipeline.tracking.config import PresenceConfig, TrackerConfig
from pipeline.tracking.presence import PresenceVerifier
from pipeline.tracking.tracker import Tracker
from pipeline.types import FeatureMap, Frame, Observation, TrackState

SIZE = (192, 256)
AWAY = range(10, 22)  # frames without the object
BACK = AWAY.stop


@pytest.fixture(scope="module")
def backbone() -> MobileNetV2Backbone:
    return MobileNetV2Backbone(BackboneConfig(name="mobilenetv2-imagenet", short_side=192))


def scene(n: int = 30) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """A red textured square (the object) walks right next to a blue one (the distractor, still);
    it is gone on the frames of AWAY and comes back on the far side, 1.5 times larger."""
    h, w = SIZE
    rng = np.random.default_rng(1)
    bg = (rng.integers(0, 60, size=(h, w, 3)) + np.array([40, 90, 40])).astype(np.uint8)
    tex = rng.integers(0, 50, size=(60, 60, 3)).astype(np.uint8)
    tex_b = rng.integers(0, 50, size=(40, 40, 3)).astype(np.uint8)
    frames, objs, distractors = [], [], []
    for i in range(n):
        img = bg.copy()
        d = np.zeros((h, w), bool)
        img[60:100, 110:150] = np.array([30, 30, 200], np.uint8) + tex_b
        d[60:100, 110:150] = True
        o = np.zeros((h, w), bool)
        if i < AWAY.start:
            x, side = 20 + 4 * i, 40
        elif i >= BACK:
            x, side = 170, 60
        if i not in AWAY:
            y = 60 if i < BACK else 100
            img[y : y + side, x : x + side] = np.array([200, 30, 30], np.uint8) + tex[:side, :side]
            o[y : y + side, x : x + side] = True
        frames.append(img)
        objs.append(o)
        distractors.append(d & ~o)
    return frames, objs, distractors


def run(backbone, config: TrackerConfig) -> list:
    frames, objs, _ = scene()
    tracker = Tracker("t", config, build_segmenter("none"), backbone.name)
    out = []
    for i, img in enumerate(frames):
        prompt = [Observation(mask_to_box(objs[0]), objs[0], 1.0, "obj", origin="prompt")]
        result = tracker.step(Frame("t", i, i / 25, 0.0, img), backbone.features([img])[0],
                              prompt if i == 0 else [])  # fmt: skip
        out.append(result.track(1))
    return out


def test_absent_object_is_lost_and_never_painted_on_the_distractor(backbone) -> None:
    tracks = run(backbone, TrackerConfig())
    _, objs, distractors = scene()
    for i in range(1, AWAY.start):  # followed while visible
        assert tracks[i].state == TrackState.ACTIVE
        assert mask_iou(tracks[i].mask_array(), objs[i]) > 0.5
    cfg = PresenceConfig()
    for i in AWAY:
        t = tracks[i]
        assert t.box is None and t.mask is None, f"frame {i}: a box while the object is away"
        if i >= AWAY.start + cfg.absent_frames - 1:
            assert t.state == TrackState.LOST, f"frame {i}: {t.state}"
    # not one pixel of any mask on the distractor once the object has gone
    for i in range(AWAY.start, len(tracks)):
        m = tracks[i].mask_array()
        assert m is None or not (m & distractors[i]).any()


def test_object_is_reacquired_elsewhere_and_larger(backbone) -> None:
    tracks = run(backbone, TrackerConfig())
    _, objs, _ = scene()
    back = next(i for i in range(BACK, len(tracks)) if tracks[i].state == TrackState.ACTIVE)
    assert back - BACK <= 2
    for i in range(back, len(tracks)):
        assert tracks[i].id == 1 and tracks[i].state == TrackState.ACTIVE
        assert mask_iou(tracks[i].mask_array(), objs[i]) > 0.6, f"frame {i}"


def test_appearance_memory_is_bounded_and_knows_object_from_background() -> None:
    rng = np.random.default_rng(0)
    obj, bg = rng.normal(size=64), rng.normal(size=64)

    def features(n_obj: int) -> FeatureMap:
        grid = np.tile(bg, (20, 20, 1)) + 0.3 * rng.normal(size=(20, 20, 64))
        grid[:n_obj, :n_obj] = obj + 0.3 * rng.normal(size=(n_obj, n_obj, 64))
        grid /= np.linalg.norm(grid, axis=-1, keepdims=True)
        return FeatureMap(grid.astype(np.float32), 8, np.ones(1), (160, 160), (160, 160), "x")

    cfg = PresenceConfig(memory_frames=3, memory_every=1, object_cells=20, background_cells=50)
    weights = np.zeros((20, 20))
    weights[:8, :8] = 1.0
    verifier = PresenceVerifier(cfg)
    verifier.enrol(1, features(8), weights, 0)
    for i in range(1, 200):
        verdict = verifier.judge(1, features(8), weights, i)
        assert verdict.visible and verdict.presence > 0.9
    memory = verifier._memories[1]
    assert len(memory.recent) == 3
    assert len(memory.keys()[1]) <= 4 * (20 + 50)
    # the object gone, its place taken by background: absent, then gone
    empty = features(0)
    assert verifier.judge(1, empty, weights, 200).visible is False
    assert verifier.judge(1, empty, weights, 201).gone is True


def blob_features(rng: np.random.Generator, obj: np.ndarray, bg: np.ndarray, cells) -> FeatureMap:
    """20x20 unit features: background everywhere, the object's on ``cells`` (a slice pair)."""
    grid = np.tile(bg, (20, 20, 1)) + 0.3 * rng.normal(size=(20, 20, 64))
    grid[cells] = obj + 0.3 * rng.normal(size=grid[cells].shape)
    grid /= np.linalg.norm(grid, axis=-1, keepdims=True)
    return FeatureMap(grid.astype(np.float32), 8, np.ones(1), (160, 160), (160, 160), "x")


BODY = (slice(4, 14), slice(6, 12))


def enrolled_body(seed: int):
    """A verifier enrolled on a 10x6-cell object at BODY, the object's cells, a generator of new
    frames of the same object and background, and a mask keeping its top 60% only."""
    rng = np.random.default_rng(seed)
    obj, bg = rng.normal(size=64), rng.normal(size=64)
    whole = np.zeros((20, 20), bool)
    whole[BODY] = True

    def frame() -> FeatureMap:
        return blob_features(rng, obj, bg, BODY)

    verifier = PresenceVerifier(PresenceConfig())
    verifier.enrol(1, frame(), whole * 1.0, 0)
    shrunk = np.zeros((20, 20))
    shrunk[4:10, 6:12] = 0.9
    return verifier, whole, frame, shrunk


def test_shrunk_mask_is_reanchored_on_the_whole_object() -> None:
    verifier, whole, new_frame, shrunk = enrolled_body(2)
    frame = new_frame()
    verdict = verifier.judge(1, frame, shrunk, 1)
    assert verdict.visible and verdict.cells is not None
    # the object's cells within the search region (the mask grown by half its extent), no other
    assert verdict.cells[4:13, 6:12].all() and not (verdict.cells & ~whole).any()
    # a propagated mask that lacks only its one-cell border: a small object's is anchored...
    border = np.zeros((20, 20))
    border[5:13, 7:11] = 0.9
    assert (verifier.judge(1, frame, border, 2).cells == whole).all()
    # ...a large object's (at least anchor_fine_cells) keeps its finer propagated edges
    large = PresenceVerifier(PresenceConfig(anchor_fine_cells=32))
    large.enrol(1, new_frame(), whole * 1.0, 0)
    assert large.judge(1, frame, border, 1).cells is None


def test_verdict_computes_only_the_cells_it_needs_and_matches_the_whole_region() -> None:
    """The verifier's k-NN runs on the propagated cells, the regions flooded from them and their
    context only; its cells and probabilities there are those of the k-NN over the whole search
    region, and a look-alike in the region but apart from the object is left out."""
    from scipy import ndimage

    from pipeline.tracking.presence import anchor_cells

    verifier, whole, new_frame, shrunk = enrolled_body(5)
    frame = new_frame()
    frame.grid[1, 14] = frame.grid[5, 7]  # a look-alike in the search region, three cells apart
    verdict = verifier.judge(1, frame, shrunk, 1, context=2)
    # the reference: every cell of the search region (rows 1-12, columns 3-14 grown by half)
    memory = verifier._memories[1]
    flat = frame.grid.reshape(400, -1)
    region = np.zeros((20, 20), bool)
    region[1:13, 3:15] = True
    full = np.zeros((20, 20), np.float32)
    full[region] = memory.probability(np.ascontiguousarray(flat[region.reshape(-1)]))
    reference = anchor_cells(full, shrunk)
    assert (verdict.cells == reference).all() and (verdict.cells == whole & region).all()
    needed = ndimage.binary_dilation(verdict.cells, iterations=2) & region
    np.testing.assert_allclose(verdict.prob[needed], full[needed], atol=1e-5)
    assert full[1, 14] > 0.5 and verdict.prob[1, 14] == 0  # never looked at
    assert (verdict.prob[~region] == 0).all()


def test_lost_object_is_reacquired_only_when_seen_twice_in_one_place() -> None:
    rng = np.random.default_rng(3)
    obj, bg = rng.normal(size=64), rng.normal(size=64)
    weights = np.zeros((20, 20))
    weights[2:8, 2:8] = 1.0
    verifier = PresenceVerifier(PresenceConfig())
    verifier.enrol(1, blob_features(rng, obj, bg, (slice(2, 8), slice(2, 8))), weights, 0)
    verifier.mark_lost(1, 5)
    here, there = (slice(10, 16), slice(10, 16)), (slice(1, 5), slice(14, 19))
    assert verifier.search(1, blob_features(rng, obj, bg, here), 6) is None  # seen once
    found = verifier.search(1, blob_features(rng, obj, bg, here), 7)
    assert found is not None and found.cells[here].all() and found.cells.sum() == 36
    verifier.mark_lost(1, 8)
    assert verifier.search(1, blob_features(rng, obj, bg, here), 9) is None
    assert verifier.search(1, blob_features(rng, obj, bg, there), 10) is None  # moved: anew
    assert verifier.search(1, blob_features(rng, obj, bg, there), 11) is not None


def test_many_lost_tracks_are_searched_in_turn_and_a_return_confirmed_across_turns() -> None:
    """With six lost tracks and two searches a frame, each frame searches two of them (those
    searched longest ago), and a returning object is re-acquired on its second search in a row,
    three frames after its first; the other tracks, which saw it beside theirs, never take it."""
    rng = np.random.default_rng(5)
    bg = rng.normal(size=64)
    objs = [rng.normal(size=64) for _ in range(6)]
    home, back = (slice(2, 8), slice(2, 8)), (slice(10, 16), slice(10, 16))
    weights = np.zeros((20, 20))
    weights[home] = 1.0
    verifier = PresenceVerifier(PresenceConfig(searches_per_frame=2))
    lost = list(range(1, 7))
    for tid, obj in zip(lost, objs, strict=True):
        prompt = blob_features(rng, obj, bg, home)
        for j, other in enumerate(objs):  # the others in a row below, each in its own place
            if j != tid - 1:
                cells = prompt.grid[17:19, 3 * j + 1 : 3 * j + 3]
                cells[:] = other / np.linalg.norm(other)
        verifier.enrol(tid, prompt, weights, 0)
        verifier.mark_lost(tid, 0)
    image = np.zeros((160, 160, 3), np.uint8)

    def upsample(probs: np.ndarray, crop: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(probs, 8, 1), 8, 2)[:, : crop.shape[0], : crop.shape[1]]

    found: dict[int, int] = {}
    turns = []
    for frame in range(1, 10):
        frame_features = blob_features(rng, objs[2], bg, back)  # track 3's object is back
        for obs in verifier.reacquire(lost, frame, frame_features, image, upsample, {}):
            found.setdefault(obs.for_track, frame)
            assert obs.mask[80:128, 80:128].all() and obs.mask.sum() == 48 * 48
        turns.append([t for t in lost if verifier._searched.get(t) == frame])
    assert turns[:4] == [[1, 2], [3, 4], [5, 6], [1, 2]]
    assert all(len(t) == 2 for t in turns)
    assert found == {3: 5}  # searched at frames 2 and 5


def test_mostly_hidden_object_is_judged_absent() -> None:
    rng = np.random.default_rng(4)
    obj, bg = rng.normal(size=64), rng.normal(size=64)
    body = (slice(4, 14), slice(6, 12))
    weights = np.zeros((20, 20))
    weights[body] = 1.0
    verifier = PresenceVerifier(PresenceConfig())
    verifier.enrol(1, blob_features(rng, obj, bg, body), weights, 0)
    for i in range(1, 6):
        assert verifier.judge(1, blob_features(rng, obj, bg, body), weights, i).visible
    # behind an occluder but for its top two rows: a fifth of its area, absent, then gone
    top = (slice(4, 6), slice(6, 12))
    peek = np.zeros((20, 20))
    peek[top] = 1.0
    first = verifier.judge(1, blob_features(rng, obj, bg, top), peek, 6)
    assert first.presence > 0.9 and not first.visible and not first.gone
    assert verifier.judge(1, blob_features(rng, obj, bg, top), peek, 7).gone
