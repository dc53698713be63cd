"""Queued jobs read only the worker's allowed folders and set only per-source settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from pipeline.confine import Confinement, Refused, confined
from pipeline.outputs.redis_streams import read_events, read_frames
from pipeline.prompts import PromptError, prompts_from_json
from pipeline.settings import WorkerConfig, load_settings
from pipeline.wire import Job, control_key, encode_control, state_key
from tests.conftest import moving_square_frames, write_video
from workers.job_rules import JOB_SETTINGS, JobRefused, check_job
from workers.service import Worker, submit_job

SECRET = "root:$6$S3CRETHASH:19000:0:99999:7:::"


@pytest.fixture()
def places(tmp_path: Path) -> tuple[Path, Path]:
    """An allowed folder with a clip, and a secret file outside it."""
    allowed, outside = tmp_path / "allowed", tmp_path / "private"
    allowed.mkdir(), outside.mkdir()
    frames, _ = moving_square_frames(n=12, size=(120, 160), side=30, step=2)
    write_video(allowed / "clip.mp4", frames)
    (outside / "shadow").write_text(SECRET + "\n")
    return allowed, outside / "shadow"


def test_paths_resolve_inside_roots_and_tricks_are_refused(places) -> None:
    allowed, secret = places
    c = Confinement.of([allowed], ["rtsp"])
    assert c.source(str(allowed / "clip.mp4")) == str((allowed / "clip.mp4").resolve())
    (allowed / "link").symlink_to(secret)
    for escape in (str(secret), f"{allowed}/../private/shadow", str(allowed / "link")):
        with pytest.raises(Refused, match="outside the folders this worker reads"):
            c.source(escape)
    with pytest.raises(Refused, match="URL scheme 'file'"):
        c.source(f"file://{secret}")
    # an FFmpeg protocol written as a path is opened as a path (never as 'concat:')
    with pytest.raises(Refused, match="outside"):
        Confinement.of([allowed], []).source(f"concat:{secret}")
    assert c.source("rtsp://u:p@cam/1") == "rtsp://u:p@cam/1"
    assert Confinement.of([], ["rtsp"]).roots == ()  # [] : no files at all
    with confined(c), pytest.raises(PromptError, match="outside the folders") as err:
        prompts_from_json({"prompts": [{"kind": "detections", "path": str(secret)}]})
    assert "S3CRET" not in str(err.value)


def test_job_settings_outside_the_allow_list_are_refused() -> None:
    worker = WorkerConfig(allowed_roots=[], allowed_schemes=["rtsp"])
    ok = Job("rtsp://cam/1", "cam", settings={"source": {"stride": 2, "start": 5},
                                               "backbone": {"name": "dinov2-small"}})  # fmt: skip
    assert check_job(ok, worker).settings == ok.settings
    for bad, named in [({"backbone": {"weights": "/tmp/evil.pt"}}, "backbone.weights"),
                       ({"source": {"max_pixels": 10**12}}, "source.max_pixels"),
                       ({"sam": {"cache_dir": "/"}}, "sam.cache_dir"),
                       ({"worker": {"allowed_roots": ["/"]}}, "worker.allowed_roots"),
                       ({"backbone": "x"}, "backbone")]:  # fmt: skip
        with pytest.raises(JobRefused, match=f"job settings {named} belong to the worker"):
            check_job(Job("rtsp://cam/1", "cam", settings=bad), worker)
    assert "source.stride" in JOB_SETTINGS and "backbone.weights" not in JOB_SETTINGS


def test_worker_refuses_what_is_outside_and_runs_the_rest(places, redis_url: str) -> None:
    allowed, secret = places
    clip = str(allowed / "clip.mp4")
    bad_det = allowed / "det.txt"
    bad_det.write_text(SECRET + "\n")  # inside the roots, but not detections: never quoted
    box = {"kind": "box", "box": [20, 45, 50, 75], "frame": 0}
    client = redis.Redis.from_url(redis_url)
    submit_job(client, Job(str(secret), "shadow", [box]))
    submit_job(client, Job(f"file://{secret}", "scheme", [box]))
    submit_job(client, Job(clip, "weights", [box], settings={"backbone": {"weights": "/x.pt"}}))
    submit_job(client, Job(clip, "prompts", [{"kind": "detections", "path": str(secret)},
                                              {"kind": "detections", "path": str(bad_det)}, box],
                           settings={"source": {"stride": 2}}))  # fmt: skip
    settings = load_settings(backbone={"name": "mobilenetv2-imagenet", "short_side": 112},
                             ray={"num_cpus": 2, "max_in_flight": 4},
                             worker={"allowed_roots": [allowed]})  # fmt: skip
    worker = Worker(settings, redis_url, name="confined", max_sources=2)
    worker.run(max_jobs=4)
    by_id = {j["source_id"]: j for j in worker.finished}
    everything = repr([client.hgetall(state_key(s)) for s in by_id])
    for sid in by_id:
        everything += "".join(e.message or "" for e in read_events(client, sid))
    assert "S3CRET" not in everything
    for sid, why in [("shadow", "outside the folders"), ("scheme", "URL scheme 'file'"),
                     ("weights", "job settings backbone.weights")]:  # fmt: skip
        assert by_id[sid]["status"] == "failed" and why in by_id[sid]["error"]
        [refusal] = [e for e in read_events(client, sid) if e.kind == "job.refused"]
        assert why in refusal.message
        assert client.hget(state_key(sid), "status") == b"failed"
        assert not client.exists(f"dinotrack:{sid}:frames")
    assert by_id["prompts"]["status"] == "finished"
    assert [r.frame_index for r in read_frames(client, "prompts")] == list(range(0, 12, 2))
    refused = [e.message for e in read_events(client, "prompts") if e.kind == "prompt.refused"]
    assert len(refused) == 2
    assert "outside the folders" in refused[0] and "det.txt line 1 is not" in refused[1]


def test_control_prompts_are_confined_too(places, redis_url: str) -> None:
    from workers.runner import SourceRun

    allowed, secret = places
    settings = load_settings(backbone={"name": "mobilenetv2-imagenet", "short_side": 112},
                             ray={"num_cpus": 2, "max_in_flight": 4},
                             worker={"allowed_roots": [allowed]})  # fmt: skip
    box = {"kind": "box", "box": [20, 45, 50, 75], "frame": 0}
    run = SourceRun(settings, str(allowed / "clip.mp4"), "ctl", [box], redis_url)
    client = redis.Redis.from_url(redis_url)
    mask = {"kind": "mask", "path": str(secret), "frame": 10}
    client.xadd(control_key("ctl"), encode_control("add_prompts", prompts=[mask]))
    summary = run.run()
    assert summary.error is None and summary.frames == 12
    [refused] = [e.message for e in read_events(client, "ctl") if e.kind == "prompt.refused"]
    assert "outside the folders" in refused and "S3CRET" not in refused
