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


class PublishFailed(RuntimeError):
    """Frames that could not be stored in Redis: the run fails with this message."""


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


def _is_transient(exc: Exception) -> bool:
    """Errors after which the same write can succeed later: Redis unreachable, or full (OOM)."""
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.WatchError, OSError,
                            redis.exceptions.OutOfMemoryError))  # fmt: skip


# the stream's last entry id, without its fields (read-only: runs even when Redis is full)
_LAST_ID = "local e = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1) " \
           "if #e == 0 then return false end return e[1][1]"  # fmt: skip


@dataclass
class PublishStats:
    published: int = 0
    duplicates: int = 0
    dropped: int = 0
    """Frames that could not be stored (the run failed)."""
    retries: int = 0
    republished: int = 0
    """Frames written again after Redis lost them."""
    errors: list[str] = field(default_factory=list)


class Publisher:
    """Writes frame results, events and state of one source, in order and idempotent.

    While Redis refuses writes (unreachable, or full: OOM), results wait in a bounded buffer and
    are retried with backoff; with the buffer full, `publish` waits for Redis up to
    ``give_up_s``, then raises `PublishFailed` naming the frames (and writes a ``publish.failed``
    event when it can). Every write first checks that the frames stream still ends where this
    publisher left it: if Redis lost entries (a restart without persistence), the frames kept for
    replay are written again, or, when they no longer cover the loss, the publisher fails.
    """

    def __init__(self, client: redis.Redis, source_id: str, config: PublishConfig | None = None):
        self.client = client
        self.source_id = source_id
        self.config = config or PublishConfig()
        self.stats = PublishStats()
        self.failure: str | None = None
        self.last_refusal = ""  # why Redis refused the last write
        self._pending: deque[FrameResult] = deque()
        self._events: deque[Event] = deque(maxlen=self.config.buffer)
        self._state: dict[str, str] = {}  # fields not yet written
        self._all_state: dict[str, str] = {}  # every field written (rewritten after a loss)
        self._replay: deque[FrameResult] = deque()
        self._stored: int | None = None  # highest frame index known to be in the stream
        self._floor = -1  # frames at or below this index cannot be published again
        self._next_retry = 0.0
        self._delay = self.config.retry_initial_s

    @property
    def pending(self) -> int:
        return len(self._pending)

    def publish(self, result: FrameResult) -> None:
        """Queue one result; written when a batch is full (call `flush` at the end).

        Raises PublishFailed when Redis has refused writes for ``give_up_s`` with the buffer full,
        or once the publisher has failed.
        """
        if self.failure:
            raise PublishFailed(self.failure)
        self._pending.append(result)
        if len(self._pending) >= self.config.buffer:
            if not self.flush(block=True, timeout_s=self.config.give_up_s):
                self.give_up(f"Redis refused writes for {self.config.give_up_s:g} s: "
                             f"{self.last_refusal}")  # fmt: skip
        elif len(self._pending) >= self.config.batch:
            self.flush(block=False)

    def event(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) >= self.config.batch:
            self.flush(block=False)

    def set_state(self, **fields: object) -> None:
        """Update the source's state hash (status, frames_done, total, fps, lag, last_error).

        Fields are written after every frame queued before them, so a reader that sees an end
        status (finished, failed, stopped) has all the frames within reach (`source_ended`).
        """
        self._state.update({k: "" if v is None else redact(str(v)) for k, v in fields.items()})
        self.flush(block=False)

    def give_up(self, reason: str) -> None:
        """Fail: the queued frames are lost; raises PublishFailed naming them."""
        lost = [r.frame_index for r in self._pending]
        self._pending.clear()
        self.stats.dropped += len(lost)
        frames = f"frames {lost[0]}–{lost[-1]}" if lost else "frames"
        self.failure = (
            f"{frames} of '{self.source_id}' could not be stored in Redis ({reason}) — free "
            "memory in Redis (maxmemory) or make it reachable, then run again with --resume"
        )
        log.error("%s", self.failure)
        span = [lost[0], lost[-1]] if lost else []
        self._events.append(
            Event("publish.failed", self.source_id, time.time(),
                  frame_index=span[0] if span else None, message=self.failure,
                  extra={"frames": span})
        )  # fmt: skip
        raise PublishFailed(self.failure)

    def flush(self, block: bool = True, timeout_s: float = 30.0) -> bool:
        """Write everything queued. Returns True when nothing is left queued.

        With ``block`` it retries with backoff for up to ``timeout_s``; without, one attempt
        (skipped while a backoff is running).
        """
        deadline = time.monotonic() + timeout_s
        while self._pending or self._events or self._state:
            now = time.monotonic()
            if now < self._next_retry:
                if not block or now >= deadline:
                    return False
                time.sleep(min(self._next_retry - now, max(0.0, deadline - now)))
                continue
            try:
                self._write_batch()
                self._delay = self.config.retry_initial_s
            except (redis.RedisError, OSError) as exc:
                if not _is_transient(exc):
                    raise
                self.stats.retries += 1
                self.last_refusal = " ".join(str(exc).split(": ")[-1].split())
                self._next_retry = time.monotonic() + self._delay * (0.5 + random.random())
                self._delay = min(self._delay * 2, self.config.retry_max_s)
                log.warning("Redis write failed for %s (%s); will retry", self.source_id, exc)
                if not block or time.monotonic() >= deadline:
                    return False
        return True

    def _write_batch(self) -> None:
        n = self.config.batch
        results = list(self._pending)[:n]
        events = list(self._events)[:n]
        state = dict(self._state) if len(self._pending) <= n else {}  # after the frames before it
        key = frames_key(self.source_id)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.watch(key)  # a restart between the check and the writes aborts them
            if results and self._stream_lost_entries(pipe.eval(_LAST_ID, 1, key)):
                return
            pipe.multi()
            for r in results:
                pipe.xadd(key, encode_frame_result(r), id=frame_entry_id(r.frame_index),
                          maxlen=self.config.maxlen, approximate=True)  # fmt: skip
            for e in events:
                pipe.xadd(events_key(self.source_id), encode_event(e),
                          maxlen=self.config.events_maxlen, approximate=True)  # fmt: skip
            if state:
                pipe.hset(state_key(self.source_id), mapping=state)
            replies = pipe.execute(raise_on_error=False)
        for r, reply in zip(results, replies[: len(results)], strict=True):
            if isinstance(reply, Exception) and not _is_duplicate_id(reply):
                self.stats.errors.append(f"frame {r.frame_index}: {reply}")
                self.give_up(str(reply))
        for r, reply in zip(results, replies[: len(results)], strict=True):
            self._pending.popleft()
            if isinstance(reply, Exception):
                self.stats.duplicates += 1
                continue
            self.stats.published += 1
            self._stored = max(self._stored if self._stored is not None else -1, r.frame_index)
            self._replay.append(r)
            if len(self._replay) > self.config.replay:
                self._floor = max(self._floor, self._replay.popleft().frame_index)
        for _ in events:
            self._events.popleft()
        if state:
            self._all_state.update(state)
            for k, v in state.items():
                if self._state.get(k) == v:
                    del self._state[k]

    def _stream_lost_entries(self, last: bytes | None) -> bool:
        """Compare the stream's end with what this publisher stored; True when frames were
        queued again because Redis lost them (raises PublishFailed when they cannot be)."""
        last_index = -1 if last is None else int(last.decode().split("-")[0])
        if self._stored is None:  # the first write: what is there was stored by others
            self._stored = self._floor = last_index
            return False
        if last_index >= self._stored:
            return False
        lost = f"frames {last_index + 1}–{self._stored}"
        if last_index < self._floor:
            self.give_up(
                f"Redis lost {lost} (restarted without persistence, or the stream was deleted); "
                f"frames up to {self._floor} are no longer held to write again"
            )
        again = [r for r in self._replay if r.frame_index > last_index]
        self._replay = deque(r for r in self._replay if r.frame_index <= last_index)
        self._pending.extendleft(reversed(again))
        self.stats.republished += len(again)
        self._stored = last_index
        self._state = {**self._all_state, **self._state}
        message = f"Redis lost {lost} (restarted without persistence?); written again"
        log.warning("%s: %s", self.source_id, message)
        span = [last_index + 1, again[-1].frame_index]
        self._events.append(
            Event("publish.republished", self.source_id, time.time(), frame_index=span[0],
                  message=message, extra={"frames": span})
        )  # fmt: skip
        return True


ENDED_STATUSES = ("finished", "failed", "stopped")


def source_ended(client: redis.Redis, source_id: str) -> bool:
    """True once the source's state says it has ended (its frames are all published by then)."""
    status = client.hget(state_key(source_id), "status")
    return status is not None and status.decode() in ENDED_STATUSES


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
    the protocol are acknowledged and reported once in ``skipped``. Iterating ends once the source
    has ended (finished, failed or stopped) and every frame has been read; `read` never ends.

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
        self.source_id = source_id
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
            ended = source_ended(self.client, self.source_id)  # before reading: nothing missed
            batch = self.read(block_ms=None if ended else 1000)
            yield from batch
            if ended and not batch:
                return
