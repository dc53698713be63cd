import numpy as np

from pipeline.masks import mask_to_box, rle_encode
from pipeline.tracking.stitch import IdStitcher, match_ids
from pipeline.types import FrameResult, Track, TrackState


def _frame(index: int, objects: dict[int, tuple[int, int]]) -> FrameResult:
    tracks = []
    for tid, (x, y) in objects.items():
        m = np.zeros((40, 60), bool)
        m[y : y + 10, x : x + 10] = True
        tracks.append(Track(tid, None, TrackState.ACTIVE, 1.0, mask_to_box(m), rle_encode(m)))
    return FrameResult("s", index, index / 25, 0.0, 60, 40, "test", tracks)


def test_match_ids_by_mask_overlap_over_common_frames() -> None:
    earlier = [_frame(i, {1: (5 + i, 5), 2: (40, 20)}) for i in range(10, 14)]
    later = [_frame(i, {7: (40, 21), 8: (5 + i, 5), 9: (0, 30)}) for i in range(12, 16)]
    assert match_ids(earlier, later) == {7: 2, 8: 1}
    assert match_ids(earlier, []) == {}


def test_stitcher_never_reuses_ids() -> None:
    stitcher = IdStitcher()
    first = stitcher.mapping([1, 2], {})
    assert first == {1: 1, 2: 2}
    second = stitcher.mapping([1, 2, 3], {2: 1})
    assert second == {1: 3, 2: 1, 3: 4}
    assert stitcher.mapping([5], {}) == {5: 5}
