"""Nothing lost silently (#12.11, #12.12): a full Redis and a Redis restarted without persistence,
on real redis-servers, under a real run."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.outputs.redis_streams import read_events, read_frames
from pipeline.settings import Settings, load_settings
from pipeline.wire import state_key
from tests.conftest import moving_square_frames, write_video
from workers.embedded_redis import EmbeddedRedis
from workers.runner import SourceRun, init_ray


def _settings(**publish) -> Settings:
    s = load_settings(backbone={"name": "mobilenetv2-imagenet", "short_side": 224},
                      ray={"num_cpus": 2, "max_in_flight": 4},
                      publish={"retry_max_s": 0.5, **publish})  # fmt: skip
    init_ray(s)
    return s


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    frames, boxes = moving_square_frames(n=60, size=(120, 160), side=30, step=1)
    return write_video(tmp_path_factory.mktemp("faults") / "faults.mp4", frames), boxes


class Server:
    """A redis-server on the embedded server's socket, with extra options, restartable."""

    def __init__(self, folder: Path, *options: str):
        self.embedded = EmbeddedRedis(folder)
        self.embedded.data_dir.mkdir(parents=True, exist_ok=True)
        self.options = list(options)
        self.url = self.embedded.address
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [*self.embedded.command(), *self.options]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill_and_restart(self) -> None:
        redis.Redis.from_url(self.url).shutdown(nosave=True)
        self.proc.wait(timeout=10)
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture()
def full_redis(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "full", "--maxmemory", "1gb", "--maxmemory-policy", "noeviction",
                    "--appendonly", "no", "--save", "")  # fmt: skip
    server.start()
    yield server
    server.stop()


def _prompt(boxes) -> list[dict]:
    return [{"kind": "box", "box": list(boxes[0]), "frame": 0}]


def _fill_at(client: redis.Redis, frame: int):
    """An on_progress that makes Redis full (maxmemory below its use) at ``frame``."""

    def on_progress(done: int, total: int | None) -> None:
        if done == frame:
            client.config_set("maxmemory", 1)

    return on_progress


def test_full_redis_is_waited_for_and_nothing_is_lost_when_it_frees(full_redis: Server, clip):
    path, boxes = clip
    client = redis.Redis.from_url(full_redis.url)
    fill = _fill_at(client, 10)

    def on_progress(done: int, total: int | None) -> None:
        fill(done, total)
        if done == 10:  # an operator frees memory 2 s later
            threading.Timer(2.0, client.config_set, ("maxmemory", 0)).start()

    settings = _settings(buffer=4, give_up_s=30)
    summary = SourceRun(settings, str(path), "full", _prompt(boxes), full_redis.url,
                        on_progress=on_progress).run()  # fmt: skip
    assert summary.error is None, summary.error
    assert [r.frame_index for r in read_frames(client, "full")] == list(range(60))
    assert summary.publish["retries"] >= 1 and summary.publish["dropped"] == 0
    assert client.hget(state_key("full"), "status") == b"finished"


def test_full_redis_that_stays_full_fails_the_run_naming_the_frames(full_redis: Server, clip):
    path, boxes = clip
    client = redis.Redis.from_url(full_redis.url)

    class FreeOnFailure(logging.Handler):  # the operator frees memory once the run has failed
        def emit(self, record: logging.LogRecord) -> None:
            if "could not be stored" in record.getMessage():
                client.config_set("maxmemory", 0)

    handler = FreeOnFailure()
    logger = logging.getLogger("dinotrack.runner")
    logger.addHandler(handler)
    try:
        settings = _settings(buffer=4, give_up_s=2)
        summary = SourceRun(settings, str(path), "stays", _prompt(boxes), full_redis.url,
                            on_progress=_fill_at(client, 10)).run()  # fmt: skip
    finally:
        logger.removeHandler(handler)
    assert summary.status == "failed"
    assert "could not be stored in Redis" in summary.error and "maxmemory" in summary.error
    stored = [r.frame_index for r in read_frames(client, "stays")]
    assert stored == list(range(len(stored))) and len(stored) < 60  # a prefix, never a gap
    state = client.hgetall(state_key("stays"))
    assert state[b"status"] == b"failed" and b"could not be stored" in state[b"last_error"]
    [failed] = [e for e in read_events(client, "stays") if e.kind == "publish.failed"]
    first, last = failed.extra["frames"]
    assert first == len(stored) and last >= first
    assert f"frames {first}–{last}" in failed.message


@pytest.fixture()
def volatile_redis(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "volatile", "--appendonly", "no", "--save", "")
    server.start()
    yield server
    server.stop()


def _restart_at(server: Server, frame: int):
    def on_progress(done: int, total: int | None) -> None:
        if done == frame:
            server.kill_and_restart()  # every key is gone

    return on_progress


def test_redis_restarted_without_persistence_gets_the_lost_frames_again(volatile_redis, clip):
    path, boxes = clip
    summary = SourceRun(_settings(), str(path), "volatile", _prompt(boxes), volatile_redis.url,
                        on_progress=_restart_at(volatile_redis, 30)).run()  # fmt: skip
    client = redis.Redis.from_url(volatile_redis.url)
    assert summary.error is None, summary.error
    assert [r.frame_index for r in read_frames(client, "volatile")] == list(range(60))
    assert summary.publish["republished"] >= 16
    kinds = [e.kind for e in read_events(client, "volatile")]
    assert "publish.republished" in kinds
    assert client.hget(state_key("volatile"), "status") == b"finished"


def test_redis_restart_losing_more_than_the_replay_fails_loudly(volatile_redis, clip):
    path, boxes = clip
    settings = _settings(replay=4)
    summary = SourceRun(settings, str(path), "lost", _prompt(boxes), volatile_redis.url,
                        on_progress=_restart_at(volatile_redis, 30)).run()  # fmt: skip
    client = redis.Redis.from_url(volatile_redis.url)
    assert summary.status == "failed"
    assert "Redis lost frames 0–" in summary.error
    assert client.hget(state_key("lost"), "status") == b"failed"
    assert "publish.failed" in [e.kind for e in read_events(client, "lost")]
