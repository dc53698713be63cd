"""The README's first hour (#13), as written: run the example (shortened with --end), read its
results with the consumer snippet, run it again with another box and see the new result."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _readme_run_command() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    line = next(ln for ln in block.splitlines() if ln.strip().startswith("dinotrack run"))
    return shlex.split(line.strip())


def _readme_consumer() -> str:
    section = README[README.index("## Where results go") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _sh(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", DINOTRACK_RAY__NUM_CPUS="2",
               PYTHONPATH=str(ROOT))  # fmt: skip
    if args[0] == "dinotrack":
        args = [sys.executable, "-m", "workers.cli", *args[1:]]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_readme_first_hour_as_written(shared_data: Path, tmp_path: Path) -> None:
    # the README runs from the repository root, next to ../shared: the same layout, in tmp_path
    (tmp_path / "shared").symlink_to(shared_data.parent)
    work = tmp_path / "dinotrack"
    work.mkdir()
    command = _readme_run_command()
    assert command[:3] == ["dinotrack", "run", "../shared/data/footage/01_dog.mp4"]

    first = _sh([*command, "--end", "10", "--backbone", "mobilenetv2-imagenet"], work)
    assert first.returncode == 0, first.stderr[-3000:]
    socket = work / ".dinotrack" / "redis.sock"
    assert f"embedded Redis started at unix://{socket}" in first.stderr
    assert "publishing to dinotrack:01_dog:frames" in first.stderr
    assert re.search(r"published\s+│?\s*10 \(duplicates skipped 0, lost 0\)", first.stdout)

    started = _sh(["dinotrack", "redis"], work)
    try:
        assert started.stdout.strip() == f"unix://{socket}", started.stderr
        consumer = _sh([sys.executable, "-c", _readme_consumer()], work)
        assert consumer.returncode == 0, consumer.stderr
        assert consumer.stdout.splitlines() == [f"{i} [1]" for i in range(10)]

        box = command[command.index("--box") + 1]
        other = "100,100,300,300"
        again = _sh([*command[:-2], "--box", other, "--end", "10",
                     "--backbone", "mobilenetv2-imagenet"], work)  # fmt: skip
        assert again.returncode == 2
        assert "already has results: 10 frames published (last frame 9), finished" in again.stderr
        assert "--fresh" in again.stderr and "--resume" in again.stderr

        fresh = _sh([*command[:-2], "--box", other, "--end", "10", "--fresh",
                     "--backbone", "mobilenetv2-imagenet"], work)  # fmt: skip
        assert fresh.returncode == 0, fresh.stderr[-3000:]
        from pipeline.outputs.redis_streams import read_frames

        client = redis.Redis(unix_socket_path=str(socket))
        frames = list(read_frames(client, "01_dog"))
        assert [f.frame_index for f in frames] == list(range(10))
        x0, y0, x1, y1 = frames[0].tracks[0].box
        ox0, oy0, ox1, oy1 = (float(v) for v in other.split(","))
        bx0 = float(box.split(",")[0])
        assert abs(x0 - ox0) < abs(x0 - bx0)  # the new box's object, not the old one
        assert _sh([sys.executable, "-c", _readme_consumer()], work).stdout.count("\n") == 10
    finally:
        stopped = _sh(["dinotrack", "redis", "--stop"], work)
    assert "stopped" in stopped.stderr
