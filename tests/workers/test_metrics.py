"""Prometheus metrics: values recorded in the worker process and replayed from actor buffers."""

from __future__ import annotations

import pickle
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from workers import metrics


def _samples() -> dict[tuple[str, tuple], float]:
    text = metrics.metrics_text().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(name: str, **labels: str) -> float:
    return _samples().get((name, tuple(sorted(labels.items()))), 0.0)


def test_module_functions_update_the_registry():
    sid = "metrics-direct"
    metrics.observe_stage("features", sid, 0.12)
    metrics.observe_stage("features", sid, 0.30)
    metrics.count_frames(sid, "in", 5)
    metrics.count_frames(sid, "out", 4)
    metrics.count_frames(sid, "dropped")
    metrics.set_in_flight(sid, 3)
    metrics.count_publish(sid, errors=1, retries=2)
    metrics.observe_model_load("mobilenetv2-imagenet", 1.5)
    assert _value("dinotrack_stage_seconds_count", stage="features", source=sid) == 2
    assert _value("dinotrack_stage_seconds_sum", stage="features", source=sid) == pytest.approx(
        0.42
    )
    assert _value("dinotrack_stage_seconds_bucket", stage="features", source=sid, le="0.25") == 1
    assert _value("dinotrack_frames_total", source=sid, kind="in") == 5
    assert _value("dinotrack_frames_total", source=sid, kind="out") == 4
    assert _value("dinotrack_frames_total", source=sid, kind="dropped") == 1
    assert _value("dinotrack_in_flight_frames", source=sid) == 3
    assert _value("dinotrack_publish_errors_total", source=sid) == 1
    assert _value("dinotrack_publish_retries_total", source=sid) == 2
    assert _value("dinotrack_model_load_seconds", model="mobilenetv2-imagenet") == 1.5
    metrics.forget_source(sid)
    assert not any(sid in dict(labels).values() for _, labels in _samples())


def test_buffer_from_an_actor_replays_into_the_worker_registry():
    sid = "metrics-buffered"
    before = _value("dinotrack_batch_size_count")
    buffer = metrics.MetricsBuffer()
    buffer.observe_stage("decode", sid, 0.004)
    buffer.count_frames(sid, "in", 2)
    buffer.observe_batch(4)
    buffer.set_in_flight(sid, 7)
    assert _value("dinotrack_frames_total", source=sid, kind="in") == 0  # nothing until applied
    records = pickle.loads(pickle.dumps(buffer.drain()))  # crosses the process boundary
    assert buffer.drain() == []
    assert metrics.apply(records) == 4
    assert _value("dinotrack_stage_seconds_count", stage="decode", source=sid) == 1
    assert _value("dinotrack_frames_total", source=sid, kind="in") == 2
    assert _value("dinotrack_in_flight_frames", source=sid) == 7
    assert _value("dinotrack_batch_size_count") == before + 1


def test_buffer_is_bounded():
    buffer = metrics.MetricsBuffer(limit=3)
    for i in range(5):
        buffer.set_in_flight("b", i)
    records = buffer.drain()
    assert buffer.overflow == 2
    assert [args[1] for _, args in records] == [2, 3, 4]


def test_bad_values_are_refused_with_the_allowed_ones():
    with pytest.raises(metrics.MetricsError, match="decode, features, track, publish"):
        metrics.observe_stage("resize", "s", 0.1)
    with pytest.raises(metrics.MetricsError, match="in, out, dropped"):
        metrics.count_frames("s", "lost")
    with pytest.raises(metrics.MetricsError, match="stage"):
        metrics.MetricsBuffer().observe_stage("nope", "s", 0.1)
    with pytest.raises(metrics.MetricsError, match="unknown metric call"):
        metrics.apply([("os.system", ("true",))])


def test_metrics_listen_on_loopback_unless_told_otherwise():
    from pipeline.settings import load_settings
    from tests.conftest import non_loopback_ipv4, reachable

    assert load_settings().worker.metrics_host == "127.0.0.1"
    assert load_settings(worker={"metrics_host": "0.0.0.0"}).worker.metrics_host == "0.0.0.0"
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try the metrics port on")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.start_metrics_server(port)
    assert reachable("127.0.0.1", port)
    assert not reachable(address, port), f"metrics port {port} answers on {address}"


def test_metrics_server_serves_the_registry():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.count_frames("metrics-http", "out", 9)
    metrics.start_metrics_server(port, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body = r.read().decode()
    assert 'dinotrack_frames_total{kind="out",source="metrics-http"} 9.0' in body
    with pytest.raises(OSError, match="--metrics-port"):
        metrics.start_metrics_server(port, addr="127.0.0.1")
