"""User text printed by the CLI: brackets and emoji codes as written; help text."""

from __future__ import annotations

from typer.testing import CliRunner

from workers.cli import app


def test_brackets_in_a_path_give_a_one_line_error() -> None:
    result = CliRunner().invoke(app, ["probe", "clips/[/bad]"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "clips/[/bad]" in errors[0], result.stderr


def test_help_prints_brackets_and_says_what_end_means() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "x0,y0,x1,y1[@frame]" in result.stdout
    assert "Names the Redis keys [file stem]." in result.stdout
    assert "End of the range, exclusive" in result.stdout


def test_emoji_codes_in_a_source_id_print_as_written(redis_url: str) -> None:
    result = CliRunner().invoke(app, ["stop", ":dog:", "--redis", redis_url])
    assert result.exit_code == 2
    assert "source ':dog:'" in result.stderr and "🐶" not in result.stderr
