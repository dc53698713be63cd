import json

import numpy as np
import pytest

from pipeline.masks import box_iou, mask_to_box, rle_decode, rle_encode
from pipeline.types import Event, FrameResult, Track, TrackState
from pipeline.wire import (
    SCHEMA_VERSION,
    WireError,
    decode_event,
    decode_frame_result,
    encode_event,
    encode_frame_result,
)


def _result() -> FrameResult:
    mask = np.zeros((48, 64), bool)
    mask[10:20, 30:45] = True
    track = Track(7, "dog", TrackState.ACTIVE, 0.93, mask_to_box(mask), rle_encode(mask))
    return FrameResult("cam-1", 12, 0.48, 1700000000.5, 64, 48, "mobilenetv2-imagenet", [track])


def test_frame_result_round_trip_keeps_every_field() -> None:
    result = _result()
    fields = encode_frame_result(result)
    assert set(fields) == {"schema", "data"}
    assert fields["schema"] == SCHEMA_VERSION
    back = decode_frame_result({k.encode(): v.encode() for k, v in fields.items()})
    assert back == result
    np.testing.assert_array_equal(back.tracks[0].mask_array(), result.tracks[0].mask_array())


def test_wire_json_has_the_documented_names() -> None:
    data = json.loads(encode_frame_result(_result())["data"])
    assert set(data) >= {"source_id", "frame_index", "pts", "wall_time", "width", "height",
                         "backbone", "tracks"}  # fmt: skip
    track = data["tracks"][0]
    assert set(track) >= {"id", "label", "state", "score", "box", "mask"}
    assert track["box"] == [30.0, 10.0, 45.0, 20.0]
    assert track["mask"]["size"] == [48, 64] and isinstance(track["mask"]["counts"], str)


def test_other_major_schema_is_refused() -> None:
    fields = encode_frame_result(_result())
    fields["schema"] = "2.0"
    with pytest.raises(WireError, match="schema"):
        decode_frame_result(fields)
    with pytest.raises(WireError, match="lacks"):
        decode_frame_result({"data": "{}"})


def test_event_round_trip() -> None:
    event = Event("track.lost", "cam-1", 5.0, frame_index=3, track_id=2, extra={"score": 0.1})
    assert decode_event(encode_event(event)) == event


def test_rle_matches_pycocotools_layout_and_boxes() -> None:
    mask = np.zeros((5, 4), bool)
    mask[1:3, 2] = True
    rle = rle_encode(mask)
    assert rle["size"] == [5, 4]
    np.testing.assert_array_equal(rle_decode(rle), mask)
    # uncompressed counts (column-major run lengths) decode too: 11 off, 2 on, 7 off
    np.testing.assert_array_equal(rle_decode({"size": [5, 4], "counts": [11, 2, 7]}), mask)
    assert mask_to_box(mask) == (2.0, 1.0, 3.0, 3.0)
    assert mask_to_box(np.zeros((3, 3), bool)) is None
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1 / 3, 0.0]])


def test_rle_is_pycocotools_own_encoding() -> None:
    """The crop-local run lengths give the very string pycocotools' encoder gives: empty and full
    masks, runs that go on into the next column, random shapes and sizes."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    masks = [np.zeros((6, 5), bool), np.ones((6, 5), bool), np.ones((1, 1), bool)]
    full_columns = np.zeros((6, 5), bool)
    full_columns[:, 1:3] = True  # one run across two columns
    masks.append(full_columns)
    for _ in range(200):
        h, w = rng.integers(1, 30, 2)
        m = rng.random((h, w)) < rng.random()
        if rng.random() < 0.5:  # a blob somewhere in an empty frame
            m[:] = False
            y, x = rng.integers(0, h), rng.integers(0, w)
            m[y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = True
        masks.append(m)
    for m in masks:
        coco = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()
        assert rle_encode(m)["counts"] == coco
        np.testing.assert_array_equal(rle_decode(rle_encode(m)), m)


def test_box_leaves_out_specks() -> None:
    mask = np.zeros((60, 80), bool)
    mask[10:40, 20:35] = True  # the object
    mask[38:42, 34:37] = True  # a part touching it (diagonally included) stays
    mask[55, 75] = True  # a one-pixel speck far away
    mask[2:5, 2:4] = True  # a 6-pixel speck
    assert mask_to_box(mask) == (2.0, 2.0, 76.0, 56.0)
    assert mask_to_box(mask, min_area=16) == (20.0, 10.0, 37.0, 42.0)
    # only specks: the box is theirs (whether they are big enough to be seen is another call)
    specks = np.zeros((8, 8), bool)
    specks[1, 1] = specks[5:7, 5:7] = True
    assert mask_to_box(specks, min_area=16) == (1.0, 1.0, 7.0, 7.0)


def test_state_hash_decodes_to_typed_numbers() -> None:
    from pipeline.wire import decode_state

    raw = {b"status": b"running", b"restarts": b"0", b"dropped": b"812", b"fps": b"9.5",
           b"frames_done": b"40", b"total": b"", b"lag": b"3", b"last_error": b""}  # fmt: skip
    assert decode_state(raw) == {"status": "running", "restarts": 0, "dropped": 812, "fps": 9.5,
                                 "frames_done": 40, "total": None, "lag": 3,
                                 "last_error": None}  # fmt: skip
