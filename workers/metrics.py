"""Prometheus metrics of the worker: stage latencies, frame counts, backlog, batches, publishing.

How numbers from Ray actors reach one scrape endpoint: each Ray actor is its own process, so a
prometheus registry inside an actor would be invisible to the worker's ``/metrics``. The worker
process (the one that calls `start_metrics_server`) owns the only registry, `REGISTRY`. Code that
runs in the worker process calls the module functions (`observe_stage`, `count_frames`, ...)
directly. Code that runs in an actor records into a `MetricsBuffer` (plain, picklable, bounded) and
hands its contents to the worker process, e.g. through an actor method that returns
``buffer.drain()`` or alongside a step's return value; the worker process then calls
`apply(records)`, which replays them into the registry. Nothing depends on Ray's own metrics agent
or dashboard, and the same functions work without Ray (``dinotrack run``, tests).

Metrics (all prefixed ``dinotrack_``):

- ``stage_seconds{stage,source}`` histogram; stage is one of `STAGES`.
- ``frames_total{source,kind}`` counter; kind is ``in`` (decoded), ``out`` (published) or
  ``dropped``.
- ``in_flight_frames{source}`` gauge: frames between decode and publish.
- ``batch_size`` histogram: frames per backbone forward pass.
- ``publish_errors_total{source}``, ``publish_retries_total{source}`` counters.
- ``model_load_seconds{model}`` gauge: duration of the last load of each model.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import start_http_server as _start_http_server

STAGES = ("decode", "features", "track", "publish")
FRAME_KINDS = ("in", "out", "dropped")

REGISTRY = CollectorRegistry(auto_describe=True)
"""The registry the worker's ``/metrics`` endpoint serves (not prometheus_client's global one)."""

STAGE_SECONDS = Histogram(
    "dinotrack_stage_seconds",
    "Seconds one frame spends in a pipeline stage.",
    ["stage", "source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
FRAMES = Counter(
    "dinotrack_frames",
    "Frames per source: in (decoded), out (published), dropped (live buffer overflow or publish "
    "buffer overflow).",
    ["source", "kind"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "dinotrack_in_flight_frames",
    "Frames of a source between decode and publish.",
    ["source"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "dinotrack_batch_size",
    "Frames per backbone forward pass.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
PUBLISH_ERRORS = Counter(
    "dinotrack_publish_errors",
    "Frames Redis refused (other than duplicates).",
    ["source"],
    registry=REGISTRY,
)
PUBLISH_RETRIES = Counter(
    "dinotrack_publish_retries",
    "Redis writes retried after a connection error or timeout.",
    ["source"],
    registry=REGISTRY,
)
MODEL_LOAD_SECONDS = Gauge(
    "dinotrack_model_load_seconds",
    "Seconds the last load of a model took (weights read, moved to the device).",
    ["model"],
    registry=REGISTRY,
)


class MetricsError(ValueError):
    """A metric call with a value outside what the metric accepts."""


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise MetricsError(f"unknown {what} '{value}' — use one of {', '.join(allowed)}")


def observe_stage(stage: str, source_id: str, seconds: float) -> None:
    """Record the time one frame of ``source_id`` spent in ``stage`` (one of `STAGES`)."""
    _check(stage, STAGES, "stage")
    STAGE_SECONDS.labels(stage=stage, source=source_id).observe(max(0.0, float(seconds)))


def count_frames(source_id: str, kind: str, n: int = 1) -> None:
    """Add ``n`` frames of ``kind`` (``in``, ``out``, ``dropped``) for ``source_id``."""
    _check(kind, FRAME_KINDS, "frame kind")
    if n < 0:
        raise MetricsError(f"count_frames n={n} must be >= 0 (counters only go up)")
    FRAMES.labels(source=source_id, kind=kind).inc(n)


def set_in_flight(source_id: str, n: int) -> None:
    """Set the number of frames of ``source_id`` between decode and publish."""
    IN_FLIGHT.labels(source=source_id).set(n)


def observe_batch(n: int) -> None:
    """Record one backbone forward pass over ``n`` frames."""
    if n < 1:
        raise MetricsError(f"observe_batch n={n} must be >= 1")
    BATCH_SIZE.observe(n)


def count_publish(source_id: str, errors: int = 0, retries: int = 0) -> None:
    """Add publish errors and retries of ``source_id`` (differences since the last call)."""
    if errors < 0 or retries < 0:
        raise MetricsError(
            f"count_publish errors={errors} retries={retries} must be >= 0 (pass the increase)"
        )
    if errors:
        PUBLISH_ERRORS.labels(source=source_id).inc(errors)
    if retries:
        PUBLISH_RETRIES.labels(source=source_id).inc(retries)


def observe_model_load(model: str, seconds: float) -> None:
    """Record how long loading ``model`` took."""
    MODEL_LOAD_SECONDS.labels(model=model).set(float(seconds))


def forget_source(source_id: str) -> None:
    """Drop a finished source's series so that per-source labels do not pile up."""
    for stage in STAGES:
        _remove(STAGE_SECONDS, stage, source_id)
    for kind in FRAME_KINDS:
        _remove(FRAMES, source_id, kind)
    for metric in (IN_FLIGHT, PUBLISH_ERRORS, PUBLISH_RETRIES):
        _remove(metric, source_id)


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # the series was never created
        metric.remove(*labels)


_CALLS = {
    "observe_stage": observe_stage,
    "count_frames": count_frames,
    "set_in_flight": set_in_flight,
    "observe_batch": observe_batch,
    "count_publish": count_publish,
    "observe_model_load": observe_model_load,
}


@dataclass
class MetricsBuffer:
    """Metric calls recorded in an actor, to be replayed in the worker process with `apply`.

    It has the same methods as the module functions. At most ``limit`` records are kept between
    drains; older ones are dropped first and counted in ``overflow``.
    """

    limit: int = 10_000
    overflow: int = 0
    _records: deque[tuple[str, tuple[Any, ...]]] = field(default_factory=deque, repr=False)

    def _add(self, name: str, *args: Any) -> None:
        if len(self._records) >= self.limit:
            self._records.popleft()
            self.overflow += 1
        self._records.append((name, args))

    def observe_stage(self, stage: str, source_id: str, seconds: float) -> None:
        _check(stage, STAGES, "stage")
        self._add("observe_stage", stage, source_id, float(seconds))

    def count_frames(self, source_id: str, kind: str, n: int = 1) -> None:
        _check(kind, FRAME_KINDS, "frame kind")
        self._add("count_frames", source_id, kind, int(n))

    def set_in_flight(self, source_id: str, n: int) -> None:
        self._add("set_in_flight", source_id, int(n))

    def observe_batch(self, n: int) -> None:
        self._add("observe_batch", int(n))

    def count_publish(self, source_id: str, errors: int = 0, retries: int = 0) -> None:
        self._add("count_publish", source_id, int(errors), int(retries))

    def observe_model_load(self, model: str, seconds: float) -> None:
        self._add("observe_model_load", model, float(seconds))

    def drain(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The records since the last drain (picklable), oldest first; the buffer is emptied.

        Record by record: a thread that records meanwhile (the backbone's batcher, the shared
        tracker's steps) loses nothing."""
        return [self._records.popleft() for _ in range(len(self._records))]


def apply(records: list[tuple[str, tuple[Any, ...]]]) -> int:
    """Replay records from `MetricsBuffer.drain` into `REGISTRY`; returns how many were applied.

    Raises:
        MetricsError: A record names no known metric call.
    """
    for name, args in records:
        call = _CALLS.get(name)
        if call is None:
            raise MetricsError(f"unknown metric call '{name}' — records come from MetricsBuffer")
        call(*args)
    return len(records)


def metrics_text() -> bytes:
    """The registry in Prometheus text format (what ``/metrics`` serves)."""
    return generate_latest(REGISTRY)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> None:
    """Serve `REGISTRY` at ``http://addr:port/metrics`` from a daemon thread.

    Raises:
        OSError: The port is taken; the message names it.
    """
    try:
        _start_http_server(port, addr=addr, registry=REGISTRY)
    except OSError as exc:
        raise OSError(
            f"cannot serve metrics on {addr}:{port}: {exc} — pick another --metrics-port"
        ) from exc
