"""The CLI and the service never print or publish a Redis or camera password (real Redis)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

from pipeline.wire import Job, state_key
from workers.service import submit_job


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], capture_output=True,
                          text=True, timeout=180, env={**os.environ, **env})  # fmt: skip


def _user_url(redis_url: str) -> str:
    """The test Redis with an ACL user whose password is ``s3cret``."""
    client = redis.Redis.from_url(redis_url)
    client.acl_setuser("tester", enabled=True, passwords=["+s3cret"], keys=["*"], channels=["*"],
                       commands=["+@all"])  # fmt: skip
    return redis_url.replace("redis://", "redis://tester:s3cret@")


def test_config_and_worker_start_line_hide_the_redis_password(redis_url: str) -> None:
    url = _user_url(redis_url)
    shown = json.loads(_cli("config", DINOTRACK_REDIS_URL=url).stdout)
    assert shown["redis_url"] == url.replace(":s3cret@", ":***@")
    proc = _cli("worker", "--redis", url, "--max-jobs", "0", DINOTRACK_RAY__NUM_CPUS="1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    said = " ".join(proc.stderr.split())  # rich wraps long lines
    assert "taking jobs from dinotrack:jobs at redis://tester:***@127.0.0.1" in said
    assert "s3cret" not in proc.stderr + proc.stdout


def test_unreachable_redis_error_hides_password_in_user_info_and_query() -> None:
    proc = _cli("status", "--redis", "redis://u:s3cret@127.0.0.1:1/0?password=s3cret")
    assert proc.returncode == 2
    said = " ".join(proc.stderr.split())
    assert "cannot reach Redis at redis://u:***@127.0.0.1:1/0?password=***" in said
    assert "s3cret" not in proc.stderr


def test_state_of_a_camera_job_hides_its_password(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    submit_job(client, Job(source="rtsp://admin:s3cret@cam.local:554/s1", source_id="cam"))
    assert client.hget(state_key("cam"), "source") == b"rtsp://admin:***@cam.local:554/s1"
