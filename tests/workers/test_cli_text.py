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
