"""Which prompts act on which frame (`Prompt.applies_at`), and a source's prompts over time
(`PromptSchedule`): first applications, re-detections, detections, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.prompts import (
    Application,
    BoxPrompt,
    DetectionsPrompt,
    ExemplarPrompt,
    MaskPrompt,
    PointsPrompt,
    PromptError,
    PromptSchedule,
    TextPrompt,
)
from pipeline.types import Frame, Observation
from tests.prompts.conftest import ExclusiveBoxSegmenter, RedDetector, blank_features, scene

RED = [(20.0, 30.0, 50.0, 50.0), (100.0, 70.0, 140.0, 100.0)]


def frame(index: int) -> Frame:
    return Frame("s", index, float(index), 0.0, scene())


def seen(obs: list[Observation]) -> list[tuple[tuple[float, ...], bool]]:
    return sorted((o.box, o.origin == "prompt") for o in obs)


def test_each_kind_says_where_it_acts(files: dict[str, Path]) -> None:
    box = BoxPrompt(box=(0, 0, 10, 10), frame=3)
    assert [box.applies_at(i) for i in (2, 3, 4)] == [(False, False), (True, True), (False, False)]
    text = TextPrompt(text="red", frame=2, redetect_every=4)
    assert [i for i in range(15) if text.applies_at(i).acts] == [2, 6, 10, 14]
    assert text.applies_at(2) == Application(True, True) and not text.applies_at(6).first
    exemplar = ExemplarPrompt(image=str(files["ref"]), box=(20, 30, 50, 50), frame=1)
    assert [i for i in range(8) if exemplar.applies_at(i).acts] == [1]  # redetect_every 0
    dets = DetectionsPrompt.from_file(files["det"])
    assert all(dets.applies_at(i) == (True, False) for i in (0, 5, 100))
    mask = MaskPrompt.from_file(files["palette"])
    points = PointsPrompt(points=[(5, 5)])
    kinds = [box, text, exemplar, dets, mask, points]
    assert [p.needs_text_detector for p in kinds] == [False, True, False, False, False, False]


def test_prompts_apply_at_the_first_frame_at_or_after_theirs_then_re_detect() -> None:
    schedule = PromptSchedule(ExclusiveBoxSegmenter(), text_detector=RedDetector())
    schedule.add([BoxPrompt(box=(0, 0, 10, 10), frame=3, label="corner")])
    schedule.add([TextPrompt(text="red", threshold=0.5, redetect_every=5)])
    fm = blank_features()
    got = {i: seen(schedule.observations(frame(i), fm)) for i in (0, 2, 4, 5, 6, 10)}
    assert got[0] == [(b, True) for b in RED]  # the text prompt's first application
    assert got[2] == []
    assert got[4] == [((0.0, 0.0, 10.0, 10.0), True)]  # frame 3 was never given
    assert got[5] == got[10] == [(b, False) for b in RED]  # re-detections
    assert got[6] == []


def test_detections_act_on_every_frame_they_hold_never_as_prompts(files: dict[str, Path]) -> None:
    schedule = PromptSchedule(ExclusiveBoxSegmenter())
    schedule.add([DetectionsPrompt.from_file(files["det"])])
    fm = blank_features()
    assert seen(schedule.observations(frame(0), fm)) == [
        ((10.0, 20.0, 40.0, 60.0), False),
        ((100.0, 60.0, 120.0, 90.0), False),
    ]
    assert schedule.observations(frame(1), fm) == []
    assert seen(schedule.observations(frame(2), fm)) == [((5.0, 5.0, 15.0, 15.0), False)]


def test_a_text_prompt_without_a_detector_is_refused_when_it_applies() -> None:
    schedule = PromptSchedule(ExclusiveBoxSegmenter())
    schedule.add([TextPrompt(text="red", frame=1)])
    assert schedule.observations(frame(0), blank_features()) == []
    with pytest.raises(PromptError, match=r"^prompt 0 \(text 'red'\): a text prompt needs"):
        schedule.observations(frame(1), blank_features())


def test_state_round_trips_through_json_and_continues_identically() -> None:
    def build() -> PromptSchedule:
        return PromptSchedule(ExclusiveBoxSegmenter(), text_detector=RedDetector())

    a = build()
    a.add(
        [
            TextPrompt(text="red", threshold=0.5, redetect_every=3),
            BoxPrompt(box=(0, 0, 9, 9), frame=4),
        ]
    )
    fm = blank_features()
    a.observations(frame(0), fm)
    state = json.loads(json.dumps(a.state_dict()))
    assert [p["kind"] for p in state["pending"]] == ["box"]
    assert [p["kind"] for p in state["applied"]] == ["text"]
    b = build()
    b.load_state_dict(state)
    assert b.state_dict() == state
    expected = {3: [(box, False) for box in RED], 4: [((0.0, 0.0, 9.0, 9.0), True)], 5: []}
    for i, want in expected.items():
        assert seen(a.observations(frame(i), fm)) == seen(b.observations(frame(i), fm)) == want
