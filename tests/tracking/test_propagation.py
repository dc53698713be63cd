"""Label propagation: exactness of the banded computation, motion, bounded memory, objects coming
and going, checkpoints, and one real DAVIS sequence."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.tracking.config import PropagationConfig
from pipeline.tracking.propagation import LabelPropagator, downsample_mask
from pipeline.types import FeatureMap


def fmap(grid: np.ndarray, stride: int = 8) -> FeatureMap:
    h, w = grid.shape[:2]
    return FeatureMap(
        grid=grid.astype(np.float32),
        stride=stride,
        global_vec=np.ones(4, np.float32) / 2,
        input_size=(h * stride, w * stride),
        image_size=(h * stride, w * stride),
        backbone="synthetic",
    )


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    v = rng.normal(size=shape).astype(np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def pooled(grid: np.ndarray) -> np.ndarray:
    """2x2 means of an (h, w, C) grid, partial blocks at odd edges averaging what they hold."""
    h, w = grid.shape[:2]
    return np.stack(
        [
            np.stack([grid[y : y + 2, x : x + 2].mean((0, 1)) for x in range(0, w, 2)])
            for y in range(0, h, 2)
        ]
    )


def reference_propagation(
    query: np.ndarray, mem_feats: list[np.ndarray], mem_labels: list[np.ndarray], cfg
) -> np.ndarray:
    """Straightforward per-query DINO label propagation (loops, no tiling, no skipping). With
    ``fine_radius``, the memory beyond it is searched as 2x2 blocks (averaged, features
    renormalised) whose centre is within ``radius`` and which are not wholly within
    ``fine_radius``; the ``topk`` best blocks (over all memory frames) give their cells outside
    ``fine_radius`` as candidates."""
    h, w, _ = query.shape
    r = cfg.radius
    rf = r if cfg.fine_radius is None else cfg.fine_radius
    out = np.zeros((h, w, mem_labels[0].shape[-1]), np.float64)
    for y in range(h):
        for x in range(w):
            sims, labs, blocks = [], [], []
            for f, lab in zip(mem_feats, mem_labels, strict=True):
                for yy in range(max(0, y - rf), min(h, y + rf + 1)):
                    for xx in range(max(0, x - rf), min(w, x + rf + 1)):
                        sims.append(float(query[y, x] @ f[yy, xx]))
                        labs.append(lab[yy, xx])
                if rf >= r:
                    continue
                fc = pooled(f)
                fc /= np.linalg.norm(fc, axis=-1, keepdims=True)
                for cy in range(fc.shape[0]):
                    for cx in range(fc.shape[1]):
                        ys, xs = (2 * cy, 2 * cy + 1), (2 * cx, 2 * cx + 1)
                        far = abs(2 * cy + 0.5 - y) > r or abs(2 * cx + 0.5 - x) > r
                        covered = all(abs(v - y) <= rf for v in ys) and all(
                            abs(v - x) <= rf for v in xs
                        )
                        if not far and not covered:
                            blocks.append((float(query[y, x] @ fc[cy, cx]), f, lab, ys, xs))
            best = sorted(blocks, key=lambda b: -b[0])[: cfg.topk]
            for _, f, lab, ys, xs in best:
                for yy in ys:
                    for xx in xs:
                        near = abs(yy - y) <= rf and abs(xx - x) <= rf
                        if yy < h and xx < w and not near:
                            sims.append(float(query[y, x] @ f[yy, xx]))
                            labs.append(lab[yy, xx])
            sims_a = np.array(sims)
            order = np.argsort(-sims_a, kind="stable")[: cfg.topk]
            wts = np.exp((sims_a[order] - sims_a[order].max()) / cfg.temperature)
            wts /= wts.sum()
            out[y, x] = (wts[:, None] * np.array(labs)[order]).sum(0)
    return out


@pytest.mark.parametrize(
    ("tile", "radius", "fine_radius"),
    [(1, 2, None), (3, 2, None), (8, 2, None), (1, 4, 1), (3, 3, 1)],
)
def test_banded_computation_equals_the_per_query_definition(
    tile: int, radius: int, fine_radius: int | None
) -> None:
    rng = np.random.default_rng(1)
    h, w, c = 7, 9, 16
    cfg = PropagationConfig(
        memory_frames=2, topk=4, radius=radius, fine_radius=fine_radius, temperature=0.2, tile=tile
    )
    cfg = cfg.model_copy(update={"skip_below": 0.0})
    prop = LabelPropagator(cfg)
    frames = [unit(rng, h, w, c) for _ in range(5)]
    m1 = np.zeros((h, w), bool)
    m1[1:4, 2:5] = True
    m2 = np.zeros((h, w), bool)
    m2[4:7, 5:9] = True
    prop.add_objects(fmap(frames[0]), {7: m1, 3: m2})
    assert prop.object_ids == [7, 3]
    ref_labels = np.stack([~(m1 | m2), m1, m2], -1).astype(np.float64)
    mem_f, mem_l = [frames[0]], [ref_labels]
    for t in range(1, 5):
        got = prop.step(fmap(frames[t]))
        want = reference_propagation(frames[t], mem_f, mem_l, cfg)
        np.testing.assert_allclose(got.transpose(1, 2, 0), want, atol=1e-5)
        np.testing.assert_allclose(got.sum(0), 1.0, atol=1e-5)
        mem_f.append(frames[t])
        mem_l.append(want)
        if len(mem_f) > 1 + cfg.memory_frames:  # the reference stays, old frames leave
            del mem_f[1], mem_l[1]


def moving_object_features(
    n: int, h: int = 12, w: int = 28, c: int = 32, side: int = 4, step: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A static textured background and a rigid textured object moving right: cells of each share
    a common appearance plus their own texture, as patch features of real scenes do."""
    rng = np.random.default_rng(0)
    common_bg, common_obj = unit(rng, c), unit(rng, c)

    def textured(common: np.ndarray, *shape: int) -> np.ndarray:
        v = common + 0.6 * unit(rng, *shape, c)
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    background = textured(common_bg, h, w)
    obj = textured(common_obj, side, side)
    grids, masks = [], []
    for t in range(n):
        g = background.copy()
        m = np.zeros((h, w), bool)
        y0, x0 = 4, 2 + t * step
        g[y0 : y0 + side, x0 : x0 + side] = obj
        m[y0 : y0 + side, x0 : x0 + side] = True
        grids.append(g)
        masks.append(m)
    return grids, masks


def test_object_follows_known_motion() -> None:
    grids, masks = moving_object_features(15)
    prop = LabelPropagator(PropagationConfig(radius=3, memory_frames=3))
    prop.add_objects(fmap(grids[0]), {1: masks[0]})
    for g, m in zip(grids[1:], masks[1:], strict=True):
        pred = prop.step(fmap(g)).argmax(0) == 1
        np.testing.assert_array_equal(pred, m)


@pytest.mark.parametrize("coarse_sure", [None, 0.9])
def test_foveated_neighbourhood_keeps_the_reach_for_fast_motion(coarse_sure: float | None) -> None:
    # 3 cells per frame: beyond the full-resolution radius, within the half-resolution reach
    grids, masks = moving_object_features(8, step=3)
    cfg = PropagationConfig(radius=4, fine_radius=1, coarse_sure=coarse_sure, memory_frames=3)
    prop = LabelPropagator(cfg)
    prop.add_objects(fmap(grids[0]), {1: masks[0]})
    ious = []
    for g, m in zip(grids[1:], masks[1:], strict=True):
        probs = prop.step(fmap(g))
        pred = probs.argmax(0) == 1
        ious.append((pred & m).sum() / (pred | m).sum())
        assert np.allclose(probs.sum(0), 1.0, atol=1e-5)
    # the far matches carry half-resolution labels: blurred edges, but the object is kept
    assert min(ious) > 0.35 and np.mean(ious) >= 0.75
    # the plain neighbourhood of the full-resolution radius alone loses it
    plain = LabelPropagator(PropagationConfig(radius=1, memory_frames=3))
    plain.add_objects(fmap(grids[0]), {1: masks[0]})
    for g in grids[1:]:
        pred = plain.step(fmap(g)).argmax(0) == 1
    assert not (pred & masks[-1]).any()


def test_memory_is_bounded_and_outputs_stay_probabilities() -> None:
    grids, masks = moving_object_features(20)
    cfg = PropagationConfig(radius=3, memory_frames=4, max_references=2)
    prop = LabelPropagator(cfg)
    prop.add_objects(fmap(grids[0]), {1: masks[0]})
    for t in range(1, 20):
        probs = prop.step(fmap(grids[t]))
        if t in (5, 10, 15):  # new objects at later frames add references
            prop.add_objects(fmap(grids[t]), {100 + t: np.eye(12, 28, dtype=bool)})
        assert prop.memory_length <= cfg.max_references + cfg.memory_frames
        assert probs.min() >= 0 and np.allclose(probs.sum(0), 1.0, atol=1e-5)
    assert prop.object_ids == [1, 105, 110, 115]
    assert prop.memory_length == cfg.max_references + cfg.memory_frames


def test_objects_added_later_removed_and_corrected() -> None:
    grids, masks = moving_object_features(8)
    prop = LabelPropagator(PropagationConfig(radius=3))
    prop.add_objects(fmap(grids[0]), {1: masks[0]})
    prop.step(fmap(grids[1]))
    second = np.zeros((12, 28), bool)
    second[0:2, 22:26] = True
    # a new object at a frame not yet propagated: the frame is propagated, then seeded
    prop.add_objects(fmap(grids[2]), {2: second})
    probs = prop.step(fmap(grids[3]))
    assert probs.shape == (3, 12, 28)
    assert (probs.argmax(0) == 2)[second].mean() >= 0.9
    assert (probs.argmax(0) == 1)[masks[3]].mean() >= 0.9
    with pytest.raises(ValueError, match="already tracked"):
        prop.add_objects(fmap(grids[3]), {2: second})
    # correct() overwrites the newest entry: object 1 is told it covers nothing any more
    prop.correct({1: np.zeros((12, 28), bool)})
    prop.remove_objects([2])
    assert prop.object_ids == [1]
    probs = prop.step(fmap(grids[4]))
    assert probs.shape == (2, 12, 28)
    assert np.allclose(probs.sum(0), 1.0, atol=1e-5)
    prop.remove_objects([1])
    assert prop.object_ids == [] and prop.memory_length == 0
    assert prop.step(fmap(grids[5])).shape == (1, 12, 28)


def test_correct_rewrites_one_object_and_rescales_the_others_only_where_it_changes() -> None:
    grids, masks = moving_object_features(4)
    prop = LabelPropagator(PropagationConfig(radius=3))
    second = np.zeros((12, 28), bool)
    second[0:3, 20:26] = True
    prop.add_objects(fmap(grids[0]), {1: masks[0], 2: second})
    prop.step(fmap(grids[1]))
    soft = np.where(masks[1], 0.6, 0.0)  # object 1 holds 0.6 of its cells, all of its top row
    soft[np.nonzero(masks[1].any(1))[0][0]] = np.where(masks[1].any(0), 1.0, 0.0)
    prop.correct({1: soft})
    before = prop._newest().labels.numpy().copy()
    moved = np.zeros((12, 28), bool)
    moved[6:10, 2:6] = True
    prop.correct({1: moved})
    after = prop._newest().labels.numpy()
    ch = prop._objects.channel(1)
    np.testing.assert_allclose(after[..., ch], moved, atol=1e-6)
    np.testing.assert_allclose(after.sum(-1), 1.0, atol=1e-5)
    # where object 1 was and is nothing, nothing changed; where it was, the others share its
    # mass in their proportions (the background takes it all where they had none)
    untouched = ~moved & (before[..., ch] == 0)
    assert untouched.any() and np.array_equal(after[untouched], before[untouched])
    others = np.delete(before, ch, axis=-1)[~moved & (before[..., ch] > 0)]
    total = others.sum(-1, keepdims=True)
    alone = np.eye(others.shape[-1], dtype=np.float32)[0]
    expect = np.where(total > 0, others / np.maximum(total, 1e-12), alone)
    assert (total > 0).any() and (total == 0).any()
    freed = np.delete(after, ch, axis=-1)[~moved & (before[..., ch] > 0)]
    np.testing.assert_allclose(freed, expect, atol=1e-5)


def test_grid_size_change_is_refused() -> None:
    grids, masks = moving_object_features(2)
    prop = LabelPropagator()
    prop.add_objects(fmap(grids[0]), {1: masks[0]})
    with pytest.raises(ValueError, match="keep the backbone and input size fixed"):
        prop.step(fmap(grids[1][:10]))


def test_state_dict_round_trip_continues_identically() -> None:
    grids, masks = moving_object_features(10)
    cfg = PropagationConfig(radius=3, memory_frames=3)
    a = LabelPropagator(cfg)
    a.add_objects(fmap(grids[0]), {4: masks[0]})
    for g in grids[1:5]:
        a.step(fmap(g))
    state = a.state_dict()
    assert all(isinstance(e["labels"], np.ndarray) for e in state["recent"])
    b = LabelPropagator(cfg)
    b.load_state_dict(state)
    assert b.object_ids == [4] and b.memory_length == a.memory_length
    for g in grids[5:]:
        # features are checkpointed as float16: the results agree to that precision
        np.testing.assert_allclose(a.step(fmap(g)), b.step(fmap(g)), atol=2e-2)


def test_real_davis_sequence(shared_data) -> None:
    """bear, first 10 frames, fused stride-8 MobileNetV2 features at a 256-pixel short side: J above
    a floor."""
    from PIL import Image

    from pipeline.models.config import BackboneConfig
    from pipeline.models.mobilenet import MobileNetV2Backbone
    from pipeline.tracking.tracker import upsample_probs

    root = shared_data / "davis2016-dev"
    frames = sorted((root / "JPEGImages" / "480p" / "bear").glob("*.jpg"))[:10]
    if not frames:
        pytest.skip("DAVIS bear sequence not in the shared data")
    backbone = MobileNetV2Backbone(BackboneConfig(name="mobilenetv2-imagenet", short_side=256))
    prop = LabelPropagator()
    js = []
    for i, path in enumerate(frames):
        image = np.array(Image.open(path).convert("RGB"))
        gt = np.array(Image.open(str(path).replace("JPEGImages", "Annotations")[:-4] + ".png")) > 0
        feats = backbone.features([image])[0]
        if i == 0:
            prop.add_objects(feats, {1: gt})
            continue
        pred = upsample_probs(prop.step(feats), image).argmax(0) == 1
        js.append((pred & gt).sum() / (pred | gt).sum())
    assert np.mean(js) > 0.8
    assert min(js) > 0.6


def test_downsample_mask_is_the_covered_fraction_of_each_cell():
    # 7 pixels onto 2 cells: cell 0 spans pixels [0, 3.5), cell 1 [3.5, 7)
    mask = np.zeros((7, 7), bool)
    mask[0:2, 0:4] = True  # rows 0-1 of cell row 0; columns 0-3: all of cell 0, half a pixel of 1
    out = downsample_mask(mask, (2, 2))
    np.testing.assert_allclose(out, [[2 / 3.5, (2 * 0.5) / (3.5 * 3.5)], [0, 0]], atol=1e-6)
    # the result does not depend on where the mask lies in a larger frame
    big = np.zeros((70, 140), bool)
    big[10:30, 40:80] = True
    cells = downsample_mask(big, (7, 14))
    assert cells[1:3, 4:8].min() == pytest.approx(1.0) and cells.sum() == pytest.approx(8.0)
    assert not downsample_mask(np.zeros((5, 5), bool), (3, 3)).any()
