"""Waiting out a Redis outage: a bounded, jittered backoff for loops that talk to Redis.

A worker's loop (take jobs, heartbeat, acknowledge) meets ``ConnectionError`` when Redis
restarts. It logs the outage once, waits ``initial_s`` doubling up to ``max_s`` (each wait
jittered by +-50 % so a fleet of workers does not reconnect in step), and logs the recovery.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field

import redis

log = logging.getLogger("dinotrack.reconnect")

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass
class Backoff:
    """Delays between reconnection attempts: ``initial_s`` doubling up to ``max_s``, jittered."""

    what: str
    initial_s: float = 0.2
    max_s: float = 5.0
    _delay: float = field(default=0.0, init=False)
    _since: float | None = field(default=None, init=False)

    def failed(self, exc: BaseException, stop: threading.Event) -> None:
        """Note a failure and wait (returns early when ``stop`` is set)."""
        if self._since is None:
            self._since = time.monotonic()
            self._delay = self.initial_s
            log.warning("%s: Redis unreachable (%s); reconnecting with backoff", self.what, exc)
        wait = self._delay * (0.5 + random.random())
        self._delay = min(self._delay * 2, self.max_s)
        stop.wait(wait)

    def succeeded(self) -> None:
        """Note a success; logs the end of an outage."""
        if self._since is not None:
            log.warning("%s: Redis back after %.1f s", self.what, time.monotonic() - self._since)
            self._since = None
