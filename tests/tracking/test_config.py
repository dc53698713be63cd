"""Tracking settings: importable without torch or OpenCV, nested names, track records round-trip."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque

import numpy as np
import pydantic
import pytest

from pipeline.tracking.config import TrackerConfig
from pipeline.tracking.propagation import ObjectRegistry
from pipeline.tracking.records import Identity
from pipeline.types import TrackState


def test_the_config_module_loads_neither_torch_nor_opencv() -> None:
    code = (
        "import sys, pipeline.tracking.config; "
        "print(sorted(m for m in ('torch', 'cv2', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_reid_settings_live_under_one_name() -> None:
    config = TrackerConfig.model_validate(
        {"identity": {"reid": {"redetect_threshold": None, "threshold": 0.9, "gate": None}}}
    )
    assert config.identity.reid.redetect_threshold is None
    assert (config.identity.reid.threshold, config.identity.reid.gate) == (0.9, None)
    with pytest.raises(pydantic.ValidationError, match="redetect_threshold"):
        TrackerConfig.model_validate({"redetect_threshold": 0.5})  # the old name fails loudly


def test_identity_round_trips_and_reads_checkpoints_without_newer_fields() -> None:
    proto = np.array([0.6, 0.8], np.float32)
    ident = Identity(
        track_id=3,
        state=TrackState.LOST,
        label="dog",
        box=(1.0, 2.0, 3.0, 4.0),
        last_seen=5,
        observed=4,
        velocity=(0.5, -1.0),
        detected=4,
        prototype=proto,
        gallery=deque([proto], maxlen=8),
        height=2.0,
    )
    d = json.loads(json.dumps(ident.to_json()))
    back = Identity.from_json(d, gallery_size=8)
    assert back.to_json() == ident.to_json() and back.gallery.maxlen == 8
    assert back.state is TrackState.LOST and back.box == (1.0, 2.0, 3.0, 4.0)
    old = {k: v for k, v in d.items() if k not in ("detected", "detection_misses", "height")}
    older = Identity.from_json(old, gallery_size=8)
    assert (older.detected, older.detection_misses, older.height) == (None, 0, 0.0)


def test_object_registry_maps_ids_to_channels_and_closes_gaps() -> None:
    objects = ObjectRegistry()
    objects.add([7, 3, 9])
    assert [objects.channel(i) for i in (7, 3, 9)] == [1, 2, 3] and objects.channels == 4
    assert objects.remove([3, 42]) == [2]
    assert objects.ids == [7, 9] and objects.channel(9) == 2 and 3 not in objects
