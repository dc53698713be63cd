"""End to end: `dinotrack run` on a generated clip, through real Ray actors into a real Redis."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis

from pipeline.masks import box_iou
from pipeline.outputs.redis_streams import read_events, read_frames
from pipeline.wire import state_key


def dinotrack(*args: str, cwd: Path | None = None, timeout: int = 240):
    env = dict(os.environ, HF_HUB_OFFLINE="1", DINOTRACK_RAY__NUM_CPUS="2")
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def test_run_publishes_one_entry_per_frame_following_the_object(
    square_clip, redis_url: str
) -> None:
    path, boxes = square_clip
    x0, y0, x1, y1 = boxes[0]
    proc = dinotrack(
        "run", str(path), "--box", f"{x0},{y0},{x1},{y1}", "--redis", redis_url,
        "--source-id", "square", "--backbone", "mobilenetv2-imagenet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = redis.Redis.from_url(redis_url)
    results = list(read_frames(client, "square"))
    assert [r.frame_index for r in results] == list(range(len(boxes)))
    assert all(r.backbone == "mobilenetv2-imagenet" for r in results)
    assert results[3].pts == pytest.approx(3 / 25, abs=1e-3)
    ious = []
    for r, truth in zip(results, boxes, strict=True):
        assert (r.width, r.height) == (320, 240)
        [track] = r.tracks
        assert track.id == results[0].tracks[0].id
        mask = track.mask_array()
        assert mask.shape == (240, 320)
        ious.append(box_iou(np.array([track.box]), np.array([truth]))[0, 0])
    assert min(ious) > 0.5, ious
    assert np.mean(ious) > 0.7, ious
    assert client.hget(state_key("square"), "status") == b"finished"
    kinds = [e.kind for e in read_events(client, "square")]
    assert kinds[0] == "source.connected" and kinds[-1] == "source.eof"
    assert "frames" in proc.stdout and "fps" in proc.stdout


def test_bad_inputs_give_one_line_errors(tmp_path: Path, square_clip, redis_url: str) -> None:
    path, _ = square_clip
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is text")
    empty_mask = tmp_path / "empty.png"
    from PIL import Image

    Image.fromarray(np.zeros((240, 320), np.uint8)).save(empty_mask)
    cases = {
        "missing": (["run", str(tmp_path / "nope.mp4"), "--box", "1,1,5,5"], "nope.mp4"),
        "not a video": (["run", str(not_video), "--box", "1,1,5,5"], "notes.mp4"),
        "box outside": (["run", str(path), "--box", "300,10,400,50"], "box"),
        "x1<x0": (["run", str(path), "--box", "50,10,20,40"], "box"),
        "empty mask": (["run", str(path), "--mask", str(empty_mask)], "empty.png"),
        "redis down": (
            ["run", str(path), "--box", "1,1,50,50", "--redis", "redis://127.0.0.1:1/0"],
            "127.0.0.1:1",
        ),  # fmt: skip
    }
    from typer.testing import CliRunner

    from workers.cli import app

    runner = CliRunner()
    for name, (args, needle) in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (name, result.exit_code, result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit), name
        assert "Traceback" not in result.stderr, (name, result.stderr)
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0], (name, result.stderr)


def test_embedded_redis_keeps_results_for_tail_and_export(square_clip, tmp_path: Path) -> None:
    """No --redis: the run starts an embedded server in --data-dir; later commands find the data."""
    from typer.testing import CliRunner

    from workers.cli import app

    path, boxes = square_clip
    data = tmp_path / "data"
    x0, y0, x1, y1 = boxes[0]
    proc = dinotrack("run", str(path), "--box", f"{x0},{y0},{x1},{y1}", "--data-dir", str(data),
                     "--end", "12", "--backbone", "mobilenetv2-imagenet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"embedded Redis started at unix://{data.resolve()}/redis.sock" in proc.stderr
    assert (data / "appendonly.aof").exists() or (data / "dump.rdb").exists()
    runner = CliRunner()
    tail = runner.invoke(app, ["tail", "square", "--data-dir", str(data), "--json"])
    assert tail.exit_code == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [d["frame_index"] for d in lines] == list(range(12))
    out = tmp_path / "tracks.txt"
    export = runner.invoke(app, ["export", "--source-id", "square", "--format", "mot",
                                 "--out", str(out), "--data-dir", str(data)])  # fmt: skip
    assert export.exit_code == 0, export.stderr
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert len(rows) == 12 and rows[0][:2] == ["1", "1"]
    assert abs(float(rows[0][2]) - x0) < 8 and abs(float(rows[0][4]) - (x1 - x0)) < 12
