"""Where the README's eval commands write, and what a failed `models pull` suggests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_readme_eval_outputs_are_ignored_by_git() -> None:
    readme = (ROOT / "README.md").read_text()
    outs = re.findall(r"`dinotrack eval \w+ [^`]*--out (\S+)`", readme)
    assert len(outs) == 3, outs
    import inspect

    from workers.commands.eval_mot import mot

    default_out = str(inspect.signature(mot).parameters["out"].default)  # `eval mot` without --out
    for out in [*outs, default_out, "runs/mot/tracks.det.txt"]:
        check = subprocess.run(["git", "check-ignore", "-q", out], cwd=ROOT)
        assert check.returncode == 0, f"{out} is not ignored by .gitignore"


def test_pulling_the_text_detector_offline_does_not_suggest_a_backbone(tmp_path, monkeypatch):
    from pipeline.models.base import ModelError
    from pipeline.models.weights import pull

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as caught:
        pull("owlv2-base", cache_dir=tmp_path)
    assert "--backbone" not in str(caught.value)
    assert "prompt with boxes or points instead" in str(caught.value)
    with pytest.raises(ModelError) as caught:
        pull("dinov2-small", cache_dir=tmp_path)
    assert "--backbone mobilenetv2-imagenet" in str(caught.value)
