"""User text printed by the CLI: brackets and emoji codes as written, readable tables, help."""

from __future__ import annotations

import redis
from typer.testing import CliRunner

from workers.cli import app


def test_brackets_in_a_path_give_a_one_line_error() -> None:
    result = CliRunner().invoke(app, ["probe", "clips/[/bad]"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "clips/[/bad]" in errors[0], result.stderr


def test_status_prints_odd_ids_and_long_errors_readably(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    long_error = "SourceError: " + "the decoder gave up on this stream again " * 8
    state = {"status": "failed", "frames_done": "3", "total": "10", "last_error": long_error}
    client.hset("dinotrack:[/x]:state", mapping=state)
    client.hset("dinotrack::dog::state", mapping={"status": "running"})
    try:
        result = CliRunner().invoke(app, ["status", "--redis", redis_url], env={"COLUMNS": "100"})
    finally:
        client.delete("dinotrack:[/x]:state", "dinotrack::dog::state")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines)
    row = next(line for line in lines if "[/x]" in line)
    assert "failed" in row and "3/10" in row and "SourceError:" in row  # narrow columns whole
    assert any(":dog:" in line for line in lines) and "🐶" not in result.stdout
    assert "gave up" in result.stdout.split("[/x]", 1)[1]  # the error wraps, not cut


def test_help_prints_brackets_and_says_what_end_means() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "x0,y0,x1,y1[@frame]" in result.stdout
    assert "Names the source's Redis keys [the file stem]." in result.stdout
    assert "End of the range, not included" in result.stdout


def test_emoji_codes_in_a_source_id_print_as_written(redis_url: str) -> None:
    result = CliRunner().invoke(app, ["stop", ":dog:", "--redis", redis_url])
    assert result.exit_code == 2
    assert "source ':dog:'" in result.stderr and "🐶" not in result.stderr
