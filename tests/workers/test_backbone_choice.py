"""`--backbone auto` in the service: the configured cache is seen, and the choice is visible."""

from __future__ import annotations

from pathlib import Path

import redis

from pipeline.outputs.redis_streams import read_events, read_frames
from pipeline.settings import load_settings
from pipeline.wire import Job, state_key
from workers.http import index_page
from workers.service import Worker, source_states, submit_job


def test_auto_runs_dinov2_small_from_the_configured_cache(
    square_clip, redis_url: str, tmp_path: Path, monkeypatch
) -> None:
    from transformers import Dinov2Config, Dinov2Model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hf"
    snapshot = cache / "models--facebook--dinov2-small" / "snapshots" / "abc123"
    tiny = Dinov2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, patch_size=14, image_size=56
    )
    Dinov2Model(tiny).save_pretrained(snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    path, boxes = square_clip
    settings = load_settings(
        backbone={"name": "auto", "cache_dir": str(cache), "short_side": 56, "device": "cpu"},
        ray={"num_cpus": 2, "max_in_flight": 4},
        worker={"allowed_roots": [str(path.parent)]},  # the clip's folder
    )
    client = redis.Redis.from_url(redis_url)
    prompt = [{"kind": "box", "box": list(boxes[0]), "frame": 0}]
    submit_job(client, Job(str(path), "auto", prompt))
    worker = Worker(settings, redis_url, name="w-auto", max_sources=1)
    worker.run(max_jobs=1)
    assert worker.finished[0]["status"] == "finished"
    assert client.hget(state_key("auto"), "backbone") == b"dinov2-small"
    chosen = [e for e in read_events(client, "auto") if e.kind == "backbone.chosen"]
    assert len(chosen) == 1 and chosen[0].message.startswith("backbone auto: dinov2-small")
    assert str(cache) in chosen[0].message
    assert {r.backbone for r in read_frames(client, "auto")} == {"dinov2-small"}
    page = index_page(source_states(client)).decode()
    assert "<td>dinov2-small</td>" in page
