"""Bad prompts are refused with a `PromptError` that names the prompt (kind, index, value) and the
fix, before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.prompts import (
    BoxPrompt,
    ExemplarPrompt,
    MaskPrompt,
    PointsPrompt,
    PromptError,
    ScribblePrompt,
    TextPrompt,
    load_prompts_file,
    parse_box_arg,
    parse_exemplar_arg,
    parse_point_arg,
    prompts_from_json,
    validate_prompts,
)


def test_validate_keeps_good_prompts_and_names_each_bad_one(files: dict[str, Path]) -> None:
    empty = MaskPrompt(id_map=np.zeros((120, 160), np.uint16), path=str(files["dir"] / "e.png"))
    prompts = [
        BoxPrompt(box=(10, 10, 50, 50)),
        BoxPrompt(box=(100, 20, 40, 60)),  # x1 < x0
        BoxPrompt(box=(100, 20, 200, 60)),  # outside 160x120
        PointsPrompt(points=[(10, 10), (500, 5)]),
        empty,
        MaskPrompt.from_file(files["palette"], ids=[2, 7]),
        PointsPrompt(points=[(10, 10)], labels=[0]),
        ScribblePrompt(polyline=[(1, 1), (170, 1)]),
        TextPrompt(text=" , "),
        ExemplarPrompt(image=str(files["ref"]), box=(100, 100, 300, 110)),
    ]
    valid, errors = validate_prompts(prompts, 160, 120)
    assert valid == [prompts[0]]
    msgs = [str(e) for e in errors]
    assert [e.index for e in errors] == list(range(1, 10))
    assert msgs[0] == (
        "prompt 1 (box [100, 20, 40, 60]): negative or zero size (-60 x 40) — give the box as "
        "x0,y0,x1,y1 with x0 < x1 and y0 < y1 (corners, not width/height)"
    )
    assert msgs[1] == (
        "prompt 2 (box [100, 20, 200, 60]): outside the 160x120 frame — keep the box within "
        "0..160 x 0..120"
    )
    assert msgs[2].startswith("prompt 3 (points [[10, 10], [500, 5]]): point (500, 5) is outside")
    assert (
        msgs[3] == "prompt 4 (mask 'e.png'): empty mask (every pixel is 0) — mark the object "
        "with non-zero ids"
    )
    assert msgs[4].startswith("prompt 5 (mask 'palette.png'): ids [7] are not in the mask")
    assert "it holds [1, 2, 5]" in msgs[4]
    assert msgs[5].startswith("prompt 6 (points [[10, 10]]): no positive point")
    assert msgs[6].startswith("prompt 7 (scribble [[1, 1], [170, 1]]): point (170, 1) is outside")
    assert msgs[7].startswith("prompt 8 (text ' , '): no words to look for")
    assert msgs[8].startswith("prompt 9 (exemplar 'ref.png'): outside the 160x120 reference image")


def test_mask_of_another_size_names_both_sizes(files: dict[str, Path]) -> None:
    mask = MaskPrompt.from_file(files["binary"])
    valid, errors = validate_prompts([mask], 320, 240)
    assert valid == []
    assert str(errors[0]) == (
        "prompt 0 (mask 'binary.png'): mask size 160x120 differs from the frame size 320x240 — "
        "give a mask of 320x240 pixels (the video's own size)"
    )


def test_unknown_kind_and_bad_fields_name_the_index(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as info:
        prompts_from_json(
            {
                "prompts": [
                    {"kind": "box", "box": [1, 2, 3, 4]},
                    {"kind": "polygon", "points": []},
                    {"kind": "box", "box": [1, 2, 3]},
                    {"kind": "points", "points": [[1, 2]], "labels": [2]},
                    {"kind": "box", "bx": [1, 2, 3, 4]},
                    {"kind": "mask", "path": "missing.png"},
                    {"kind": "box", "box": [1, 2, 3, 4], "frame": -1},
                ]
            },
            tmp_path,
        )
    errs = [str(e) for e in info.value.errors]
    assert str(info.value).startswith("6 of 7 prompts are invalid — fix each one listed")
    assert errs[0].startswith("prompt 1: unknown kind 'polygon' — use one of box, detections,")
    assert errs[1] == (
        'prompt 2 (box): box [1, 2, 3] is not four numbers — give "box": [x0, y0, x1, y1] in pixels'
    )
    assert errs[2].startswith("prompt 3 (points [[1, 2]]): labels [2] do not match the 1 point")
    assert errs[3].startswith("prompt 4 (box): unknown field(s) 'bx' — use only box, frame")
    assert errs[4].startswith(f"prompt 5 (mask 'missing.png'): file not found: {tmp_path}")
    assert errs[5].startswith("prompt 6 (box -1): frame -1 is not a frame index")


def test_one_bad_prompt_raises_it_alone() -> None:
    with pytest.raises(PromptError, match=r"^prompt 0: unknown kind None"):
        prompts_from_json([{"box": [1, 2, 3, 4]}])


def test_malformed_json_file_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"prompts": [\n  {"kind": "box", "box": [1, 2, 3, 4],}\n]}')
    with pytest.raises(PromptError) as info:
        load_prompts_file(path)
    assert str(info.value).startswith("prompts file p.json is not valid JSON: ")
    assert "at line 2 column" in str(info.value)
    assert str(info.value).endswith("fix the JSON syntax (see docs/prompts.md for the format)")
    with pytest.raises(PromptError, match="prompts file not found"):
        load_prompts_file(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("arg", "parser", "expected"),
    [
        ("1,2,3", parse_box_arg, "box prompt '1,2,3': '1,2,3' is not 4 comma-separated numbers"),
        ("1,2,3,4@x", parse_box_arg, "box prompt '1,2,3,4@x': frame 'x' is not a frame index"),
        ("1,2,5", parse_point_arg, "points prompt '1,2,5': point label 5 is neither 1 nor 0"),
        ("ref.jpg", parse_exemplar_arg, "exemplar prompt 'ref.jpg': no box after the image path"),
    ],
)
def test_cli_errors(arg: str, parser, expected: str) -> None:
    with pytest.raises(PromptError) as info:
        parser(arg)
    assert str(info.value).startswith(expected + " — write ")


def test_json_round_trip_of_bad_documents_is_refused() -> None:
    with pytest.raises(PromptError, match="is not a prompts document"):
        prompts_from_json(json.loads('{"boxes": []}'))
