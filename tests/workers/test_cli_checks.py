"""Checks before any work: every refused input exits 2 with one line, before "publishing to"."""

from __future__ import annotations

import redis
from typer.testing import CliRunner

from workers.cli import app


def _refused(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    assert "publishing to" not in result.stderr and "queued job" not in result.stdout, args
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], (args, result.stderr)


def test_run_refuses_bad_ranges_chunks_and_prompt_frames(square_clip, redis_url: str) -> None:
    path, _ = square_clip  # 30 frames
    run = ["run", str(path), "--box", "10,10,60,60", "--redis", redis_url]
    _refused(["run", str(path), "--box", "10,10,60,60@999", "--redis", redis_url], "frame 999")
    _refused([*run, "--end", "10", "--box", "10,10,60,60@12"], "frame 12")
    _refused(
        [*run, "--start", "5"],
        "at frame 0 acts on none of the frames processed (frames 5 to 29)",
    )
    _refused([*run, "--stride", "2", "--box", "10,10,60,60@3"], "(frames 0 to 29, every 2th)")
    _refused([*run, "--start", "20", "--end", "10"], "--start 20 is not before --end 10")
    _refused([*run, "--overlap", "-5", "--chunks", "2"], "--overlap -5")
    _refused([*run, "--chunks", "0"], "--chunks must be auto or a positive number")


def test_range_options_on_a_live_url_are_refused(redis_url: str) -> None:
    _refused(["submit", "rtsp://127.0.0.1:1/cam", "--box", "1,1,9,9", "--end", "400",
              "--redis", redis_url], "live stream")  # fmt: skip


def test_submit_resolves_and_checks_paths(square_clip, redis_url: str, monkeypatch) -> None:
    path, _ = square_clip
    _refused(["submit", "/no/such/file.mp4", "--box", "1,1,9,9", "--redis", redis_url],
             "/no/such/file.mp4 not found")  # fmt: skip
    monkeypatch.chdir(path.parent)
    result = CliRunner().invoke(app, ["submit", path.name, "--box", "10,10,60,60",
                                      "--source-id", "rel", "--redis", redis_url])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{path.resolve()} as source 'rel'" in result.stdout.replace("\n", "")


def test_tail_and_prompt_refuse_unknown_sources_and_tracks(redis_url: str) -> None:
    from pipeline.outputs.redis_streams import Publisher
    from pipeline.types import FrameResult, Track, TrackState

    _refused(["tail", "nosuchsource", "--redis", redis_url], "no source 'nosuchsource'")
    _refused(["prompt", "nosuchsource", "--remove-track", "7", "--redis", redis_url],
             "no source 'nosuchsource'")  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    publisher = Publisher(client, "blocks")
    track = Track(id=1, label=None, state=TrackState.ACTIVE, score=1.0, box=(1, 1, 9, 9))
    publisher.publish(FrameResult(source_id="blocks", frame_index=0, pts=0.0, wall_time=0.0,
                                  width=32, height=32, backbone="x", tracks=[track]))  # fmt: skip
    assert publisher.flush()
    publisher.set_state(status="running")
    _refused(["prompt", "blocks", "--remove-track", "7", "--redis", redis_url], "no track 7")
    result = CliRunner().invoke(app, ["prompt", "blocks", "--remove-track", "1",
                                      "--redis", redis_url])  # fmt: skip
    assert result.exit_code == 0 and "1 removal(s)" in result.stdout
    publisher.set_state(status="finished")
    _refused(["prompt", "blocks", "--box", "1,1,9,9", "--redis", redis_url], "has finished")
