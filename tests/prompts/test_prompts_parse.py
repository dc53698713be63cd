"""Parsing every prompt kind (JSON file and CLI forms) and the lossless JSON round trip."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipeline.prompts import (
    BoxPrompt,
    DetectionsPrompt,
    Exemplar,
    ExemplarPrompt,
    PointsPrompt,
    PromptError,
    ScribblePrompt,
    TextPrompt,
    load_prompts_file,
    merge_points,
    parse_box_arg,
    parse_detections_arg,
    parse_exemplar_arg,
    parse_mask_arg,
    parse_point_arg,
    parse_text_arg,
    prompts_from_json,
    prompts_to_json,
)


def write_doc(folder: Path, prompts: list[dict]) -> Path:
    path = folder / "prompts.json"
    path.write_text(json.dumps({"prompts": prompts}))
    return path


def every_kind(files: dict[str, Path]) -> list:
    doc = [
        {"kind": "box", "box": [10, 20, 50, 60], "frame": 0, "label": "dog"},
        {"kind": "points", "points": [[5, 6], [7, 8]], "labels": [1, 0], "frame": 2},
        {"kind": "mask", "path": "palette.png", "ids": [1, 5]},
        {"kind": "mask", "path": "binary.png", "frame": 1},
        {"kind": "scribble", "polyline": [[0, 0], [30, 40]]},
        {"kind": "exemplar", "image": "ref.png", "box": [20, 30, 50, 50]},
        {"kind": "text", "text": "person, red car", "threshold": 0.2},
        {"kind": "detections", "path": "det.txt", "format": "mot", "label": "person"},
        {"kind": "detections", "path": "det.json"},
    ]
    return load_prompts_file(write_doc(files["dir"], doc))


def test_file_parses_every_kind_with_relative_paths(files: dict[str, Path]) -> None:
    ps = every_kind(files)
    assert [p.kind for p in ps] == [
        "box", "points", "mask", "mask", "scribble", "exemplar", "text", "detections", "detections"
    ]  # fmt: skip
    box, points, palette, binary, scribble, exemplar, text, mot, detjson = ps
    assert box == BoxPrompt(box=(10.0, 20.0, 50.0, 60.0), frame=0, label="dog")
    assert points == PointsPrompt(points=[(5, 6), (7, 8)], labels=[1, 0], frame=2)
    assert palette.object_ids() == [1, 5] and palette.size == (120, 160)
    assert palette.object_masks()[5].sum() == 10 * 20
    assert binary.object_ids() == [1] and binary.object_masks()[1].sum() == 40 * 60
    assert binary.frame == 1
    assert scribble.polyline == [(0.0, 0.0), (30.0, 40.0)]
    assert exemplar.image == str(files["ref"]) and exemplar.reference_size == (120, 160)
    assert text.queries == ["person", "red car"] and text.threshold == 0.2
    assert mot.format == "mot" and mot.for_frame(0) == [
        ((10.0, 20.0, 40.0, 60.0), 0.9, "person"),
        ((100.0, 60.0, 120.0, 90.0), 0.4, "person"),
    ]
    assert mot.for_frame(1) == [] and mot.for_frame(2) == [((5.0, 5.0, 15.0, 15.0), 0.7, "person")]
    assert detjson.format == "json"
    assert detjson.for_frame(0) == [((1.0, 2.0, 30.0, 40.0), 0.8, "car")]
    assert detjson.for_frame(2) == [((10.0, 10.0, 20.0, 20.0), 1.0, None)]


def test_json_round_trip_is_lossless(files: dict[str, Path]) -> None:
    ps = every_kind(files)
    doc = prompts_to_json(ps)
    wire = json.loads(json.dumps(doc))  # what goes over Redis
    back = prompts_from_json(wire)
    assert prompts_to_json(back) == doc
    for a, b in zip(ps, back, strict=True):
        assert type(a) is type(b) and a.frame == b.frame and a.label == b.label
    for i in (0, 1, 4, 6, 7, 8):
        assert back[i] == ps[i]
    assert back[2].object_ids() == [1, 5]
    for k, m in ps[2].object_masks().items():
        np.testing.assert_array_equal(back[2].object_masks()[k], m)
    np.testing.assert_array_equal(back[3].id_map, ps[3].id_map)


def test_mask_travels_without_its_file(files: dict[str, Path]) -> None:
    prompt = parse_mask_arg(f"{files['palette']}@4")
    wire = json.dumps(prompt.to_json())
    files["palette"].unlink()
    (back,) = prompts_from_json(json.loads(wire))
    assert back.frame == 4 and back.object_ids() == [1, 2, 5]
    np.testing.assert_array_equal(back.id_map, prompt.id_map)
    single = {"kind": "mask", "rle": back.to_json()["rle"]["2"]}  # one plain RLE = object 1
    (one,) = prompts_from_json(single)
    assert one.object_ids() == [1] and one.object_masks()[1].sum() == 40 * 40


def test_enrolled_exemplar_travels_with_its_prototype(files: dict[str, Path]) -> None:
    proto = np.array([0.6, 0.8, 0.0], np.float32)
    ex = Exemplar(prototype=proto, backbone="b", background=np.eye(3, dtype=np.float32)[2:])
    prompt = ExemplarPrompt(image=str(files["ref"]), box=(20, 30, 50, 50), exemplar=ex)
    wire = json.loads(json.dumps(prompt.to_json()))
    files["ref"].unlink()
    (back,) = prompts_from_json(wire)
    assert back.exemplar is not None and back.exemplar.backbone == "b"
    np.testing.assert_array_equal(back.exemplar.prototype, proto)
    np.testing.assert_array_equal(back.exemplar.background, ex.background)
    assert back.to_json() == prompt.to_json()


def test_cli_forms() -> None:
    assert parse_box_arg("10,20,110,220") == BoxPrompt(box=(10, 20, 110, 220))
    assert parse_box_arg(" 1.5,2,3,4@12 ") == BoxPrompt(box=(1.5, 2, 3, 4), frame=12)
    assert parse_point_arg("5,6") == PointsPrompt(points=[(5, 6)], labels=[1])
    assert parse_point_arg("5,6,0@3") == PointsPrompt(points=[(5, 6)], labels=[0], frame=3)
    assert parse_text_arg(" person, red car ").queries == ["person", "red car"]
    merged = merge_points(
        [parse_point_arg("1,1"), parse_box_arg("0,0,5,5"), parse_point_arg("2,2,0")]
    )
    assert merged == [
        PointsPrompt(points=[(1, 1), (2, 2)], labels=[1, 0]),
        BoxPrompt(box=(0, 0, 5, 5)),
    ]


def test_cli_file_forms(files: dict[str, Path]) -> None:
    mask = parse_mask_arg(str(files["binary"]))
    assert mask.object_ids() == [1] and mask.frame == 0
    at_sign = files["binary"].rename(files["dir"] / "a@b.png")
    assert parse_mask_arg(str(at_sign)).object_ids() == [1]
    assert parse_mask_arg(f"{at_sign}@3").frame == 3
    ex = parse_exemplar_arg(f"{files['ref']}:20,30,50,50@7")
    assert ex.box == (20, 30, 50, 50) and ex.frame == 7 and ex.image == str(files["ref"])
    dets = parse_detections_arg(str(files["det"]))
    assert dets.format == "mot" and len(dets.for_frame(0)) == 2
    assert parse_detections_arg(str(files["detjson"])).format == "json"


def test_scribble_sampling_spaces_points_evenly() -> None:
    s = ScribblePrompt(polyline=[(0, 0), (100, 0), (100, 50)], spacing=25)
    pts = s.sample_points()
    assert pts.shape == (7, 2)  # length 150 / 25 + 1
    np.testing.assert_allclose(pts[0], (0, 0))
    np.testing.assert_allclose(pts[-1], (100, 50))
    np.testing.assert_allclose(pts[4], (100, 0))
    steps = np.abs(np.diff(pts, axis=0)).sum(axis=1)
    np.testing.assert_allclose(steps, 25.0)
    capped = ScribblePrompt(polyline=[(0, 0), (1000, 0)], spacing=10, max_points=5)
    np.testing.assert_allclose(capped.sample_points()[:, 0], [0, 250, 500, 750, 1000])
    assert ScribblePrompt(polyline=[(3, 4)]).sample_points().tolist() == [[3.0, 4.0]]


def test_prompt_error_pickles_with_its_message() -> None:
    err = PromptError("bad", "fix it", kind="box", index=2, value="[1, 2, 3, 4]")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) == "prompt 2 (box [1, 2, 3, 4]): bad — fix it"


def test_detections_prompt_has_no_file_after_round_trip(files: dict[str, Path]) -> None:
    dets = DetectionsPrompt.from_file(files["det"])
    dets.min_score = 0.5
    (back,) = prompts_from_json(json.loads(json.dumps(prompts_to_json([dets]))))
    assert back == dets
    assert back.for_frame(0) == [((10.0, 20.0, 40.0, 60.0), 0.9, None)]


@pytest.mark.parametrize("text", ["person, red car", ["person", "red car"]])
def test_text_accepts_string_or_list(text: str | list[str]) -> None:
    (p,) = prompts_from_json({"prompts": [{"kind": "text", "text": text}]})
    assert p == TextPrompt(text="person, red car")
