"""The re-run rule (#12.13, #13.1): a source id with results is never spliced silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from typer.testing import CliRunner

from pipeline.outputs.redis_streams import read_events, read_frames
from pipeline.settings import Settings, load_settings
from pipeline.wire import JOBS_STREAM, Job, encode_job, state_key
from workers.cli import app
from workers.rerun import RerunRefused, job_key
from workers.runner import init_ray
from workers.service import Worker, submit_job


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    s = load_settings(backbone={"name": "mobilenetv2-imagenet", "short_side": 224},
                      ray={"num_cpus": 2, "max_in_flight": 4},
                      worker={"allowed_roots": [tmp_path_factory.getbasetemp()]})  # fmt: skip
    init_ray(s)
    return s


def _run(clip: Path, redis_url: str, box, *extra: str):
    args = ["run", str(clip), "--box", ",".join(str(v) for v in box), "--redis", redis_url,
            "--source-id", "sq", "--backbone", "mobilenetv2-imagenet", *extra]  # fmt: skip
    return CliRunner().invoke(app, args)


def _first_box(client: redis.Redis) -> tuple[float, ...]:
    first = next(iter(read_frames(client, "sq")))
    return first.tracks[0].box


def test_run_on_a_source_with_results_refuses_then_fresh_and_resume(
    settings: Settings, square_clip, redis_url: str
) -> None:
    path, boxes = square_clip
    client = redis.Redis.from_url(redis_url)
    first = _run(path, redis_url, boxes[0], "--end", "8")
    assert first.exit_code == 0, first.stderr
    n = client.xlen("dinotrack:sq:frames")
    assert n >= 8

    again = _run(path, redis_url, boxes[0], "--end", "8")
    assert again.exit_code == 2, again.stderr
    [error] = [ln for ln in again.stderr.splitlines() if ln.startswith("error:")]
    assert f"already has results: {n} frames published (last frame {n - 1}), finished" in error
    assert "--fresh" in error and "--resume" in error
    assert client.xlen("dinotrack:sq:frames") == n  # nothing written

    other = (150, 20, 230, 90)  # another object: the fresh result is the new one only
    fresh = _run(path, redis_url, other, "--end", "5", "--fresh")
    assert fresh.exit_code == 0, fresh.stderr
    frames = list(read_frames(client, "sq"))
    assert [f.frame_index for f in frames] == list(range(len(frames))) and len(frames) < n
    assert np.allclose(_first_box(client), other, atol=12)
    kinds = [e.kind for e in read_events(client, "sq")]
    assert kinds.count("source.connected") == 1 and kinds.count("source.eof") == 1

    resumed = _run(path, redis_url, other, "--end", "12", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    frames = list(read_frames(client, "sq"))
    assert [f.frame_index for f in frames] == list(range(12))  # continued, no duplicates
    assert {t.id for f in frames for t in f.tracks} == {1}  # the same object went on
    assert np.allclose(_first_box(client), other, atol=12)

    client.delete("dinotrack:sq:checkpoint")
    no_ckpt = _run(path, redis_url, other, "--resume")
    assert no_ckpt.exit_code == 2
    assert "no usable checkpoint" in no_ckpt.stderr and "--fresh" in no_ckpt.stderr


def _job(path: Path, source_id: str, box, job_id: str, **kw) -> dict:
    prompts = [{"kind": "box", "box": list(box), "frame": 0}]
    return encode_job(Job(str(path), source_id, prompts, job_id=job_id, **kw))


def test_service_refuses_duplicate_job_ids_and_a_second_job_on_one_source(
    settings: Settings, square_clip, redis_url: str
) -> None:
    path, boxes = square_clip
    client = redis.Redis.from_url(redis_url)
    Worker(settings, redis_url, name="setup")
    client.xadd(JOBS_STREAM, _job(path, "a", boxes[0], "j1"))
    client.xadd(JOBS_STREAM, _job(path, "a2", boxes[0], "j1"))  # same job id again
    client.xadd(JOBS_STREAM, _job(path, "a", (150, 20, 230, 90), "j2"))  # same source id
    worker = Worker(settings, redis_url, name="w", max_sources=3)
    worker.run(max_jobs=3)
    by_status = sorted((j["status"], j.get("error") or "") for j in worker.finished)
    assert [s for s, _ in by_status] == ["finished", "refused", "refused"], by_status
    errors = " | ".join(e for _, e in by_status)
    assert "duplicate job id 'j1'" in errors
    assert "source 'a' is already running as job j1" in errors
    assert not client.exists("dinotrack:a2:frames")
    frames = list(read_frames(client, "a"))  # all from the first job
    assert [f.frame_index for f in frames] == list(range(30))
    assert np.allclose(frames[0].tracks[0].box, boxes[0], atol=12)
    assert client.hget(job_key("j1"), "status") == b"finished"
    assert client.hget(job_key("j2"), "status") == b"refused"
    assert "job.refused" in [e.kind for e in read_events(client, "a")]

    # a new job on the finished source: refused at submit, and by a worker, unless fresh/resume
    with pytest.raises(RerunRefused, match="already has results: 30 frames"):
        submit_job(client, Job(str(path), "a", [], job_id="j3"))
    with pytest.raises(RerunRefused, match="job id 'j1' is already finished"):
        submit_job(client, Job(str(path), "b", [], job_id="j1"))
    client.xadd(JOBS_STREAM, _job(path, "a", boxes[0], "j4"))
    other = (150, 20, 230, 90)
    submit_job(client, Job(str(path), "a", [{"kind": "box", "box": list(other), "frame": 0}],
                           job_id="j5", on_existing="fresh"))  # fmt: skip
    worker = Worker(settings, redis_url, name="w2", max_sources=1)
    worker.run(max_jobs=2)
    assert sorted(j["status"] for j in worker.finished) == ["finished", "refused"]
    frames = list(read_frames(client, "a"))
    assert [f.frame_index for f in frames] == list(range(30))
    assert frames[0].tracks[0].box[0] > 140  # the new result only (the old box is at x 20)
    assert client.hget(state_key("a"), "job_id") == b"j5"
    started = [e for e in read_events(client, "a") if e.kind == "job.started"]
    assert [e.extra["job_id"] for e in started] == ["j5"]
