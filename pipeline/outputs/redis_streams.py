"""Publishing to and reading from Redis Streams (keys and encoding in `pipeline.wire`).

Entry ids of the frames stream are derived from the frame index (``<frame_index>-1``), so a retried
or repeated publish can never duplicate or reorder entries: Redis refuses an id that is not greater
than the stream's last one, and the publisher counts such a refusal as a duplicate and skips it.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from pipeline.outputs.config import PublishConfig
from pipeline.redact import redact, redact_url
from pipeline.types import Event, FrameResult
from pipeline.wire import (
    WireError,
    decode_event,
    decode_frame_result,
    encode_event,
    encode_frame_result,
    events_key,
    frames_key,
    state_key,
)

log = logging.getLogger("dinotrack.outputs")


class RedisUnavailable(RuntimeError):
    """Redis cannot be reached; the message names the URL and what to do."""


def connect(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """A pinged client for ``url`` (redis://, rediss:// for TLS, unix://; user:password@)."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=max(timeout_s, 10.0)
        )
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {redact_url(url)}: {redact(str(exc))} — start Redis there, "
            "fix --redis, or leave --redis out to use the embedded server"
        ) from exc
    return client


def frame_entry_id(frame_index: int) -> str:
    return f"{int(frame_index)}-1"


def _is_duplicate_id(exc: Exception) -> bool:
    return isinstance(exc, redis.ResponseError) and "equal or smaller" in str(exc)


@dataclass
class PublishStats:
    published: int = 0
    duplicates: int = 0
    dropped: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


class Publisher:
    """Writes frame results, events and state of one source, pipelined and idempotent.

    While Redis is unreachable, results wait in a bounded buffer and are retried with backoff;
    beyond the bound the oldest are dropped and counted in ``stats.dropped``.
    """

    def __init__(self, client: redis.Redis, source_id: str, config: PublishConfig | None = None):
        self.client = client
        self.source_id = source_id
        self.config = config or PublishConfig()
        self.stats = PublishStats()
        self._pending: deque[FrameResult] = deque()
        self._events: deque[Event] = deque(maxlen=self.config.buffer)
        self._next_retry = 0.0
        self._delay = self.config.retry_initial_s

    @property
    def pending(self) -> int:
        return len(self._pending)

    def publish(self, result: FrameResult) -> None:
        """Queue one result; written when a batch is full (call `flush` at the end)."""
        if len(self._pending) >= self.config.buffer:
            self._pending.popleft()
            self.stats.dropped += 1
        self._pending.append(result)
        if len(self._pending) >= self.config.batch:
            self.flush(block=False)

    def event(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) >= self.config.batch:
            self.flush(block=False)

    def flush(self, block: bool = True, timeout_s: float = 30.0) -> bool:
        """Write everything queued. Returns True when nothing is left queued.

        With ``block`` it retries with backoff for up to ``timeout_s``; without, one attempt
        (skipped while a backoff is running).
        """
        deadline = time.monotonic() + timeout_s
        while self._pending or self._events:
            now = time.monotonic()
            if now < self._next_retry:
                if not block or now >= deadline:
                    return False
                time.sleep(min(self._next_retry - now, max(0.0, deadline - now)))
                continue
            try:
                self._write_batch()
                self._delay = self.config.retry_initial_s
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self.stats.retries += 1
                self._next_retry = time.monotonic() + self._delay * (0.5 + random.random())
                self._delay = min(self._delay * 2, self.config.retry_max_s)
                log.warning("Redis write failed for %s (%s); will retry", self.source_id, exc)
                if not block or time.monotonic() >= deadline:
                    return False
        return True

    def _write_batch(self) -> None:
        results = list(self._pending)[: self.config.batch]
        events = list(self._events)[: self.config.batch]
        pipe = self.client.pipeline(transaction=False)
        key = frames_key(self.source_id)
        for r in results:
            pipe.xadd(
                key,
                encode_frame_result(r),
                id=frame_entry_id(r.frame_index),
                maxlen=self.config.maxlen,
                approximate=True,
            )
        for e in events:
            pipe.xadd(
                events_key(self.source_id),
                encode_event(e),
                maxlen=self.config.events_maxlen,
                approximate=True,
            )
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, (redis.ConnectionError, redis.TimeoutError)):
                raise reply
        for r, reply in zip(results, replies[: len(results)], strict=True):
            if isinstance(reply, Exception):
                if _is_duplicate_id(reply):
                    self.stats.duplicates += 1
                else:
                    self.stats.errors.append(f"frame {r.frame_index}: {reply}")
                    log.error("publish of frame %d failed: %s", r.frame_index, reply)
            else:
                self.stats.published += 1
        for _ in results:
            self._pending.popleft()
        for _ in events:
            self._events.popleft()

    def set_state(self, **fields: object) -> None:
        """Update the source's state hash (status, frames_done, total, fps, lag, last_error)."""
        mapping = {k: "" if v is None else redact(str(v)) for k, v in fields.items()}
        try:
            self.client.hset(state_key(self.source_id), mapping=mapping)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            log.warning("state update for %s failed: %s", self.source_id, exc)


def last_frame_index(client: redis.Redis, source_id: str) -> int | None:
    """Index of the last frame published for a source (used to resume), or None."""
    entries = client.xrevrange(frames_key(source_id), count=1)
    if not entries:
        return None
    return int(entries[0][0].decode().split("-")[0])


def read_frames(
    client: redis.Redis, source_id: str, start: int = 0, end: int | None = None, batch: int = 500
) -> Iterator[FrameResult]:
    """Published results of a source in frame order (no consumer group), from frame ``start``."""
    key = frames_key(source_id)
    lo = frame_entry_id(start)
    hi = "+" if end is None else frame_entry_id(end)
    while True:
        entries = client.xrange(key, min=lo, max=hi, count=batch)
        for _, fields in entries:
            yield decode_frame_result(fields)
        if len(entries) < batch:
            return
        last = entries[-1][0].decode()
        lo = "(" + last


def read_events(client: redis.Redis, source_id: str) -> list[Event]:
    return [decode_event(f) for _, f in client.xrange(events_key(source_id))]


class TrackReader:
    """Reads a source's frames, through a consumer group (at-least-once, resumable) or plainly.

    A consumer that crashes and comes back with the same name first gets the entries it had read but
    not acknowledged, then new ones; `ack` after handling each result. Entries that do not follow
    the protocol are acknowledged and reported once in ``skipped``.

    Args:
        client: Redis client.
        source_id: Source whose ``dinotrack:<source-id>:frames`` stream is read.
        group: Consumer-group name (created at ``start`` if missing); None reads without a group.
        consumer: This consumer's name within the group (stable across restarts to resume).
        start: Where a new group, or a group-less reader, starts: "0" (oldest) or "$" (new only).
    """

    def __init__(
        self,
        client: redis.Redis,
        source_id: str,
        group: str | None = None,
        consumer: str = "reader",
        start: str = "0",
    ):
        self.client = client
        self.key = frames_key(source_id)
        self.group = group
        self.consumer = consumer
        self.skipped: list[str] = []
        # With a group: own pending entries are read from this cursor first. Without: XREAD cursor.
        self._cursor: str | None = "0" if group else start
        if group is None:
            return
        try:
            client.xgroup_create(self.key, group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int = 100, block_ms: int | None = 1000) -> list[tuple[str, FrameResult]]:
        """Next entries as (entry_id, result): own pending ones first, then new ones."""
        if self.group is None:
            return self._read_plain(count, block_ms)
        while True:
            backlog = self._cursor is not None
            reply = self.client.xreadgroup(
                self.group,
                self.consumer,
                {self.key: self._cursor if backlog else ">"},
                count=count,
                block=None if backlog else block_ms,
            )
            entries = reply[0][1] if reply else []
            if backlog:
                if not entries:
                    self._cursor = None
                    continue
                last = entries[-1][0]
                self._cursor = last.decode() if isinstance(last, bytes) else last
            out = []
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                if not fields:  # trimmed away while pending
                    self.client.xack(self.key, self.group, eid)
                    continue
                try:
                    out.append((eid, decode_frame_result(fields)))
                except (WireError, KeyError, ValueError) as exc:
                    self.skipped.append(f"{eid}: {exc}")
                    self.client.xack(self.key, self.group, eid)
            if out or not backlog:
                return out

    def _read_plain(self, count: int, block_ms: int | None) -> list[tuple[str, FrameResult]]:
        reply = self.client.xread({self.key: self._cursor}, count=count, block=block_ms)
        out = []
        for entry_id, fields in reply[0][1] if reply else []:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            self._cursor = eid
            try:
                out.append((eid, decode_frame_result(fields)))
            except (WireError, KeyError, ValueError) as exc:
                self.skipped.append(f"{eid}: {exc}")
        return out

    def ack(self, *entry_ids: str) -> int:
        """Acknowledge handled entries (no-op without a group)."""
        if not entry_ids or self.group is None:
            return 0
        return int(self.client.xack(self.key, self.group, *entry_ids))

    def __iter__(self) -> Iterator[tuple[str, FrameResult]]:
        while True:
            yield from self.read()
