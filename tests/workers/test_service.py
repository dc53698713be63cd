"""The service on a real local Ray and a real Redis: jobs, failures, kills, reclaim, stop."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import redis

from pipeline.outputs.redis_streams import read_events, read_frames
from pipeline.settings import Settings, load_settings
from pipeline.wire import JOBS_STREAM, Job, encode_job, frames_key, source_keys, state_key
from tests.conftest import moving_square_frames, write_video
from workers.runner import SourceRun, init_ray
from workers.service import GROUP, Worker, request_stop, source_states, submit_job


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
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    frames, boxes = moving_square_frames(n=90, size=(120, 160), side=30, step=1)
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", frames), boxes


def _box_prompt(box) -> list[dict]:
    return [{"kind": "box", "box": list(box), "frame": 0}]


def _indices(client: redis.Redis, source_id: str) -> list[int]:
    return [r.frame_index for r in read_frames(client, source_id)]


@pytest.mark.parametrize("victim", ["tracker", "source"])
def test_killed_actor_resumes_from_checkpoint_without_gaps_or_duplicates(
    settings: Settings, long_clip, redis_url: str, victim: str
) -> None:
    import ray

    path, boxes = long_clip
    killed: list[int] = []

    def on_progress(done: int, total: int | None) -> None:
        if done == 40 and not killed:
            killed.append(ray.get(run.actors[victim].pid.remote()))
            os.kill(killed[0], signal.SIGKILL)

    run = SourceRun(settings, str(path), "killed", _box_prompt(boxes[0]), redis_url,
                    on_progress=on_progress, checkpoint_every=10)  # fmt: skip
    summary = run.run()
    client = redis.Redis.from_url(redis_url)
    assert killed and summary.restarts == 1 and summary.error is None
    assert _indices(client, "killed") == list(range(90))
    assert client.hget(state_key("killed"), "status") == b"finished"
    last = list(read_frames(client, "killed"))[-1]
    assert [t.id for t in last.tracks] == [1]  # the same object, followed after the restart


def test_worker_runs_jobs_and_survives_a_failing_one(
    settings: Settings, square_clip, redis_url: str, tmp_path: Path
) -> None:
    path, boxes = square_clip
    client = redis.Redis.from_url(redis_url)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01not a video")
    submit_job(client, Job(str(bad), "bad", _box_prompt(boxes[0])))
    submit_job(client, Job(str(path), "good", _box_prompt(boxes[0])))
    client.xadd(JOBS_STREAM, {"schema": "1.0", "data": '{"source": "x"}'})  # malformed job
    worker = Worker(settings, redis_url, name="w1", max_sources=2)
    worker.run(max_jobs=3)
    by_id = {j.get("source_id"): j for j in worker.finished}
    assert by_id["good"]["status"] == "finished" and by_id["good"]["frames"] == 30
    assert by_id["bad"]["status"] == "failed" and "broken.mp4" in by_id["bad"]["error"]
    assert _indices(client, "good") == list(range(30))
    states = {r["source_id"]: r for r in source_states(client)}
    assert states["bad"]["status"] == "failed" and "broken.mp4" in states["bad"]["last_error"]
    assert states["good"]["status"] == "finished"
    kinds = [e.kind for e in read_events(client, "bad")]
    assert "job.failed" in kinds
    from workers.metrics import metrics_text  # the actors' numbers reach the worker's registry

    text = metrics_text().decode()
    assert 'dinotrack_frames_total{kind="out",source="good"} 30.0' in text
    assert 'dinotrack_stage_seconds_count{source="good",stage="features"} 30.0' in text
    assert client.xpending(JOBS_STREAM, GROUP)["pending"] == 0


def test_sources_of_a_worker_share_one_tracker_process_and_one_backbone(
    settings: Settings, square_clip, redis_url: str
) -> None:
    """No source has a torch process or a model of its own (issue 12, item 17: memory)."""
    import ray

    path, boxes = square_clip
    client = redis.Redis.from_url(redis_url)
    for sid in ("share-a", "share-b"):
        submit_job(client, Job(str(path), sid, _box_prompt(boxes[0])))
    worker = Worker(settings, redis_url, name="w-share", max_sources=2)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop})
    thread.start()
    try:
        for _ in range(240):  # the shared actors end with `run`: look before stopping it
            if len(worker.finished) == 2:
                break
            threading.Event().wait(0.5)
        assert sorted(j["status"] for j in worker.finished) == ["finished", "finished"]
        trackers = worker._trackers
        assert sorted(ray.get(trackers.opened.remote())) == ["share-a", "share-b"]
        assert ray.get(trackers.sessions.remote()) == []  # each run closed its session
        assert len(worker._backbones) == 1 and len(worker._segmenters) == 1
    finally:
        stop.set()
        thread.join(timeout=60)
    assert worker._trackers is None and worker._backbones == {}  # ended with the worker
    for sid in ("share-a", "share-b"):
        assert _indices(client, sid) == list(range(30))
        assert [t.id for t in list(read_frames(client, sid))[-1].tracks] == [1]


def test_tracker_sessions_run_calls_in_the_order_sent_and_closing_ends_waiting_ones(
    settings: Settings,
) -> None:
    """Ray may start a shared actor's calls in any order; each session runs them in seq order."""
    import ray

    from workers.actors import TrackerGone, start_trackers

    trackers = start_trackers()
    try:
        session = ray.get(trackers.open.remote("order", settings, "mobilenetv2-imagenet", []))
        later = trackers.snapshot.remote(session, 1)  # sent first, but second in the session
        ready, _ = ray.wait([later], timeout=1.0)
        assert ready == []  # waits for call 0
        first = trackers.snapshot.remote(session, 0)
        assert ray.get([first, later], timeout=30)[0][0] is None  # no frame stepped yet
        waiting = trackers.snapshot.remote(session, 3)  # call 2 never comes
        assert ray.get(trackers.sessions.remote()) == ["order"]
        ray.get(trackers.close.remote(session))
        with pytest.raises(TrackerGone, match="was closed"):
            ray.get(waiting, timeout=30)
        with pytest.raises(TrackerGone, match="no tracker session"):
            ray.get(trackers.snapshot.remote(session, 4), timeout=30)
        assert ray.get(trackers.sessions.remote()) == []
    finally:
        ray.kill(trackers, no_restart=True)


def test_dead_workers_job_is_reclaimed_and_a_stop_is_honoured(
    settings: Settings, long_clip, redis_url: str
) -> None:
    path, boxes = long_clip
    client = redis.Redis.from_url(redis_url)
    Worker(settings, redis_url, name="setup")  # creates the group
    client.xadd(JOBS_STREAM, encode_job(Job(str(path), "orphan", _box_prompt(boxes[0]))))
    # a worker that read the job and died before acknowledging it
    client.xreadgroup(GROUP, "dead-worker", {JOBS_STREAM: ">"}, count=1)
    worker = Worker(settings, redis_url, name="w2", claim_idle_s=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop, "max_jobs": 1})
    thread.start()
    try:
        deadline = 120
        while deadline and client.xlen(frames_key("orphan")) < 5:
            threading.Event().wait(0.5)
            deadline -= 1
        assert request_stop(client, "orphan") == "running"
        thread.join(timeout=120)
    finally:
        stop.set()
        thread.join(timeout=60)
    [job] = worker.finished
    assert job["source_id"] == "orphan" and job["status"] == "stopped"
    done = _indices(client, "orphan")
    assert 0 < len(done) < 90 and done == list(range(len(done)))
    assert client.hget(state_key("orphan"), "status") == b"stopped"


def test_redis_restart_mid_run_loses_nothing(settings: Settings, long_clip, tmp_path: Path) -> None:
    import subprocess

    from workers.embedded_redis import EmbeddedRedis

    path, boxes = long_clip
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    restarted: list[subprocess.Popen] = []

    def restart_later() -> None:
        threading.Event().wait(3.0)
        restarted.append(subprocess.Popen(server.command(), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))  # fmt: skip

    def on_progress(done: int, total: int | None) -> None:
        if done == 20:
            server.stop()  # saves and exits: Redis is gone for ~3 s while frames keep coming
            threading.Thread(target=restart_later).start()

    try:
        run = SourceRun(settings, str(path), "flaky", _box_prompt(boxes[0]), url,
                        on_progress=on_progress)  # fmt: skip
        summary = run.run()
        client = redis.Redis.from_url(url)
        assert summary.error is None, summary.error
        assert _indices(client, "flaky") == list(range(90))
        assert summary.publish["dropped"] == 0 and summary.publish["retries"] >= 1
    finally:
        for proc in restarted:
            proc.terminate()
            proc.wait(timeout=10)


def test_chunked_run_reads_as_one_continuous_run(settings: Settings, long_clip, redis_url) -> None:
    from workers.chunks import run_chunked

    path, boxes = long_clip
    summary = run_chunked(settings, str(path), "chunked", _box_prompt(boxes[0]), redis_url,
                          chunks=3, overlap=6)  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    assert summary.error is None
    results = list(read_frames(client, "chunked"))
    assert [r.frame_index for r in results] == list(range(90))
    assert {t.id for r in results for t in r.tracks} == {1}  # the same object, the same id
    assert not [k for p in source_keys("chunked~chunk*") for k in client.keys(p)]  # removed
    assert client.hget(state_key("chunked"), "status") == b"finished"


def test_source_and_publisher_processes_do_not_load_torch(
    settings: Settings, square_clip, redis_url: str
) -> None:
    """Only the model stages pay for importing torch (seconds of CPU per actor process)."""
    import sys

    import ray

    from workers.actors import PublisherActor, SourceActor

    source = SourceActor.remote(str(square_clip[0]), "light", settings.source)
    publisher = PublisherActor.remote(redis_url, "light", settings.publish)

    def heavy(_actor: object) -> list[str]:
        return sorted(m for m in ("torch", "cv2", "scipy", "pipeline.settings") if m in sys.modules)

    try:
        assert ray.get(source.get_info.remote())["frames"] == 30
        assert ray.get([a.__ray_call__.remote(heavy) for a in (source, publisher)]) == [[], []]
    finally:
        for actor in (source, publisher):
            ray.kill(actor, no_restart=True)
