"""Results that outlive the command (#13.2): a stable address per data folder, `dinotrack redis`,
the README's consumer snippet as written, and a TrackReader that ends with its source."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import redis

from pipeline.outputs.redis_streams import Publisher, TrackReader
from tests.outputs.test_redis_streams import _result
from tests.workers.test_cli_run import dinotrack

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_consumer() -> str:
    text = README.read_text()
    section = text[text.index("## Where results go") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_results_stay_reachable_at_one_address_by_the_readme_snippet(square_clip, tmp_path: Path):
    path, boxes = square_clip
    x0, y0, x1, y1 = boxes[0]
    run = dinotrack("run", str(path), "--box", f"{x0},{y0},{x1},{y1}", "--source-id", "01_dog",
                    "--end", "6", "--backbone", "mobilenetv2-imagenet", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    socket = tmp_path / ".dinotrack" / "redis.sock"
    assert f"embedded Redis started at unix://{socket}" in run.stderr
    assert not socket.exists()  # run stopped the server it started; the data stays in the folder

    started = dinotrack("redis", cwd=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"unix://{socket}"
        again = dinotrack("redis", cwd=tmp_path)  # the same server, the same address
        assert again.stdout.strip() == f"unix://{socket}" and "running" in again.stderr
        consumer = subprocess.run([sys.executable, "-c", _readme_consumer()], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
        assert consumer.returncode == 0, consumer.stderr
        lines = consumer.stdout.splitlines()
        assert lines == [f"{i} [1]" for i in range(len(lines))] and len(lines) >= 5
        client = redis.Redis(unix_socket_path=str(socket))
        assert client.xlen("dinotrack:01_dog:frames") == len(lines)
    finally:
        stopped = dinotrack("redis", "--stop", cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    assert not socket.exists()


def test_track_reader_ends_once_the_source_has_ended(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pub = Publisher(client, "ends")
    for i in range(3):
        pub.publish(_result(i, "ends"))
    pub.set_state(status="running")
    assert pub.flush()
    grouped = TrackReader(client, "ends", group="g", consumer="c")
    plain = TrackReader(client, "ends")
    assert len(grouped.read(block_ms=10)) == 3 and len(plain.read(block_ms=10)) == 3
    for i in range(3, 5):  # the last frames are still queued when the end status is set
        pub.publish(_result(i, "ends"))
    pub.set_state(status="finished")
    assert [r.frame_index for _, r in grouped] == [3, 4]
    assert [r.frame_index for _, r in plain] == [3, 4]
    assert [r.frame_index for _, r in TrackReader(client, "ends")] == [0, 1, 2, 3, 4]
