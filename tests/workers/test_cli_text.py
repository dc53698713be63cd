"""User strings are printed as written (no rich markup or emoji); bad inputs refused up front."""

from __future__ import annotations

import redis
from typer.testing import CliRunner

from pipeline.wire import state_key
from workers.cli import app

runner = CliRunner()


def test_brackets_in_a_path_give_an_error_line_not_a_markup_traceback() -> None:
    result = runner.invoke(app, ["probe", "clips/[/bad]"])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: cannot open 'clips/[/bad]'"), result.stderr


def test_status_prints_odd_source_ids_and_long_errors_literally(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    long_error = "decoder failed: " + "x" * 200
    client.hset(state_key("[/x]"), mapping={"status": "failed", "last_error": long_error})
    client.hset(state_key(":dog:"), mapping={"status": "running", "last_error": ""})
    result = runner.invoke(app, ["status", "--redis", redis_url])
    assert result.exit_code == 0, result.stderr
    assert "[/x]" in result.stdout and ":dog:" in result.stdout and "🐶" not in result.stdout
    assert f"[/x]: error: {long_error}" in result.stdout.replace("\n", "")
    [header] = [line for line in result.stdout.splitlines() if "source" in line]
    assert "restarts" in header and "…" not in header, result.stdout


def test_help_keeps_bracketed_defaults() -> None:
    result = runner.invoke(app, ["run", "--help"], terminal_width=200)
    assert "Names the Redis keys [file stem]." in result.stdout
    assert "exclusive" in result.stdout


def test_tail_of_an_unknown_source_exits_non_zero(redis_url: str) -> None:
    result = runner.invoke(app, ["tail", "nosuchsource", "--redis", redis_url])
    assert result.exit_code == 2
    assert "no source 'nosuchsource'" in result.stderr


def test_bad_chunk_options_are_refused_before_publishing(square_clip, redis_url: str) -> None:
    path, _ = square_clip
    for option, needle in ((["--chunks", "0"], "--chunks"), (["--overlap", "-5"], "--overlap")):
        result = runner.invoke(app, ["run", str(path), "--box", "1,1,50,50", "--redis", redis_url,
                                     "--backbone", "mobilenetv2-imagenet", *option])  # fmt: skip
        assert result.exit_code == 2, result.stderr
        assert "publishing to" not in result.stderr and needle in result.stderr, result.stderr


def test_submit_refuses_a_missing_file_and_queues_an_absolute_path(
    square_clip, redis_url: str, tmp_path, monkeypatch
) -> None:
    missing = runner.invoke(app, ["submit", "/no/such/file.mp4", "--box", "1,1,5,5",
                                  "--redis", redis_url])  # fmt: skip
    assert missing.exit_code == 2 and "/no/such/file.mp4" in missing.stderr, missing.stderr
    path, _ = square_clip
    monkeypatch.chdir(path.parent)
    queued = runner.invoke(app, ["submit", path.name, "--box", "1,1,50,50", "--redis", redis_url])
    assert queued.exit_code == 0, queued.stderr
    [(_, [(_, fields)])] = redis.Redis.from_url(redis_url).xread({"dinotrack:jobs": 0})
    assert str(path.resolve()).encode() in b"".join(fields.values())


def test_prompt_to_an_unknown_source_exits_non_zero(redis_url: str) -> None:
    result = runner.invoke(app, ["prompt", "nosuchsource", "--remove-track", "7",
                                 "--redis", redis_url])  # fmt: skip
    assert result.exit_code == 2 and "no source 'nosuchsource'" in result.stderr, result.stderr
