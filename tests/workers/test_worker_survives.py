"""A worker outlives bad input and stops cleanly: malformed jobs, bad live prompts, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from pipeline.outputs.redis_streams import read_events, read_frames
from pipeline.settings import Settings, load_settings
from pipeline.wire import JOBS_STREAM, Job, control_key, encode_control, frames_key, state_key
from tests.conftest import moving_square_frames, write_video
from workers.runner import SourceRun, init_ray
from workers.service import GROUP, Worker, source_states, submit_job

MALFORMED = [
    '{"source": "a.mp4", "source_id": "m1", "submitted": "abc"}',
    '{"source": "a.mp4", "source_id": "m2", "prompts": "not a list"}',
    '{"source": "a.mp4", "source_id": "m3", "colour": "red"}',
    '{"source": 7, "source_id": "m4"}',
    "{not json",
    "[1, 2]",
    "[" * 100_000,
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = load_settings(
        backbone={"name": "mobilenetv2-imagenet", "short_side": 224},
        ray={"num_cpus": 2, "max_in_flight": 4},
        worker={"allowed_roots": [tmp_path_factory.getbasetemp()]},  # the clips' folders
    )
    init_ray(s)
    return s


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    frames, boxes = moving_square_frames(n=40, size=(120, 160), side=30, step=1)
    return write_video(tmp_path_factory.mktemp("small") / "small.mp4", frames), boxes


def _box_prompt(box) -> list[dict]:
    return [{"kind": "box", "box": list(box), "frame": 0}]


def test_malformed_jobs_are_dropped_with_an_event_and_the_next_job_runs(
    settings: Settings, small_clip, redis_url: str
) -> None:
    path, boxes = small_clip
    client = redis.Redis.from_url(redis_url)
    worker = Worker(settings, redis_url, name="survivor", max_sources=1)
    for data in MALFORMED:
        client.xadd(JOBS_STREAM, {"schema": "1.0", "data": data})
    client.xadd(JOBS_STREAM, {"schema": "1.0", "data": b"\xff\xfe"})  # not UTF-8
    submit_job(client, Job(str(path), "good", _box_prompt(boxes[0])))
    worker.run(max_jobs=len(MALFORMED) + 2)
    statuses = [j["status"] for j in worker.finished]
    assert statuses == ["refused"] * (len(MALFORMED) + 1) + ["finished"]
    assert worker.finished[-1]["frames"] == 40
    assert [r.frame_index for r in read_frames(client, "good")] == list(range(40))
    refused = {sid: read_events(client, sid) for sid in ("m1", "m2", "m3")}
    assert [e.kind for e in refused["m1"]] == ["job.refused"]
    assert "'submitted' must be a Unix time number" in refused["m1"][0].message
    assert "'prompts' must be a list" in refused["m2"][0].message
    assert "unknown field(s) colour" in refused["m3"][0].message
    assert client.xpending(JOBS_STREAM, GROUP)["pending"] == 0


def test_bad_live_prompts_are_refused_and_the_job_goes_on(
    settings: Settings, small_clip, redis_url: str
) -> None:
    path, boxes = small_clip
    client = redis.Redis.from_url(redis_url)
    run = SourceRun(settings, str(path), "live", _box_prompt(boxes[0]), redis_url)
    # read at the run's first control poll (frame 10): a box outside the 160x120 frame, a track
    # id that is not a number, one never given out, a message that is not JSON, then a valid box
    client.xadd(control_key("live"), encode_control("add_prompts", prompts=[
        {"kind": "box", "box": [300, 100, 400, 170], "frame": 12}]))  # fmt: skip
    client.xadd(control_key("live"), encode_control("remove_track", track_id="abc"))
    client.xadd(control_key("live"), encode_control("remove_track", track_id=99))
    client.xadd(control_key("live"), {"schema": "1.0", "data": "{oops"})
    client.xadd(control_key("live"), encode_control("add_prompts", prompts=[
        {"kind": "box", "box": [2, 2, 30, 30], "frame": 12, "label": "corner"}]))  # fmt: skip
    summary = run.run()
    assert summary.status == "finished" and summary.frames == 40
    refused = [e.message for e in read_events(client, "live") if e.kind == "prompt.refused"]
    assert len(refused) == 4
    assert "outside" in refused[0]
    assert "integer 'track_id'" in refused[1] and "'abc'" in refused[1]
    assert "track 99 is not known" in refused[2] and "tracks: 1" in refused[2]
    assert "not JSON" in refused[3]
    last = list(read_frames(client, "live"))[-1]
    assert sorted(t.id for t in last.tracks) == [1, 2]  # the valid prompt was applied
    assert client.hget(state_key("live"), "status") == b"finished"
    (state,) = source_states(client)  # typed numbers, as `status --json` and /api print them
    assert (state["frames_done"], state["restarts"], state["dropped"]) == (40, 0, 0)
    assert isinstance(state["fps"], float) and state["total"] == 40


def test_sigterm_hands_running_jobs_back_and_another_worker_resumes(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    frames, boxes = moving_square_frames(n=200, size=(120, 160), side=30, step=0)
    path = write_video(tmp_path / "long.mp4", frames)
    client = redis.Redis.from_url(redis_url)
    env = dict(os.environ, HF_HUB_OFFLINE="1", DINOTRACK_WORKER__ALLOWED_ROOTS=f'["{tmp_path}"]',
               DINOTRACK_RAY__NUM_CPUS="2", DINOTRACK_BACKBONE__NAME="mobilenetv2-imagenet",
               DINOTRACK_BACKBONE__SHORT_SIDE="224")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", "--redis", redis_url, "--claim-idle", "30"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        submit_job(client, Job(str(path), "term", _box_prompt(boxes[0])))
        deadline = time.monotonic() + 180
        while client.xlen(frames_key("term")) < 20 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, errs = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, errs[-2000:]
    assert "Traceback" not in errs and "term: queued" in errs
    published = client.xlen(frames_key("term"))
    assert 20 <= published < 200
    assert client.hget(state_key("term"), "status") == b"queued"
    kinds = [e.kind for e in read_events(client, "term")]
    assert kinds[-1] == "job.handed_back"
    pending = client.xpending(JOBS_STREAM, GROUP)
    assert pending["pending"] == 1  # still the queue's, claimable at once
    worker = Worker(settings, redis_url, name="heir", claim_idle_s=30)
    worker.run(max_jobs=1)
    assert worker.finished[0]["status"] == "finished"
    assert [r.frame_index for r in read_frames(client, "term")] == list(range(200))
    assert client.hget(state_key("term"), "status") == b"finished"
    assert client.xpending(JOBS_STREAM, GROUP)["pending"] == 0


def test_worker_waits_out_a_redis_restart_and_the_stream_ends_complete(
    settings: Settings, tmp_path: Path
) -> None:
    import threading

    from workers.embedded_redis import EmbeddedRedis

    frames, boxes = moving_square_frames(n=90, size=(120, 160), side=30, step=1)
    path = write_video(tmp_path / "clip.mp4", frames)
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    client = redis.Redis.from_url(url)
    worker = Worker(settings, url, name="patient", heartbeat_s=0.5)
    submit_job(client, Job(str(path), "restarted", _box_prompt(boxes[0])))
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    thread.start()
    restarted = None
    try:
        deadline = time.monotonic() + 120
        while client.xlen(frames_key("restarted")) < 15 and time.monotonic() < deadline:
            time.sleep(0.1)
        server.stop()  # saves and exits under the working worker
        time.sleep(3.0)  # the worker's xreadgroup / heartbeat meet ConnectionError meanwhile
        restarted = subprocess.Popen(server.command(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        thread.join(timeout=240)
        assert not thread.is_alive()
        assert [j["status"] for j in worker.finished] == ["finished"]
        assert [r.frame_index for r in read_frames(client, "restarted")] == list(range(90))
        assert client.hget(state_key("restarted"), "status") == b"finished"
        assert client.xpending(JOBS_STREAM, GROUP)["pending"] == 0
    finally:
        if restarted is not None:
            restarted.terminate()
            restarted.wait(timeout=10)
