"""The CLI's layout: options declared once, `PromptArgs` shared, no import cycle, a light import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer.main

COMMANDS = Path(__file__).resolve().parents[2] / "workers" / "commands"
PROMPT_OPTIONS = ["--box", "--mask", "--point", "--text", "--exemplar", "--exemplar-threshold",
                  "--detections", "--prompts"]  # fmt: skip


def _command(*path: str):
    from workers.cli import app

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def test_every_option_is_declared_once() -> None:
    """One declaration per flag; the three flags whose meaning differs by command excepted."""
    declared = [
        flag
        for module in COMMANDS.glob("*.py")
        for flag in re.findall(r'typer\.Option\(\s*"(--[a-z-]+)"', module.read_text())
    ]
    twice = {d for d in declared if declared.count(d) > 1}
    # a file or a folder; a job's id or the id to read; detections as a prompt or as an
    # evaluation's input; a benchmark's own root and sequence list
    assert twice == {"--out", "--source-id", "--detections", "--root", "--sequences"}
    for path in [("run",), ("eval", "davis")]:  # one --backbone, the same help, job and eval
        helps = {p.help for p in _command(*path).params if "--backbone" in p.opts}
        assert len(helps) == 1
    assert {p.help for p in _command("run").params if "--backbone" in p.opts} == {
        p.help for p in _command("eval", "mot").params if "--backbone" in p.opts
    }


def test_run_submit_prompt_share_the_prompt_options() -> None:
    for name in ("run", "submit", "prompt"):
        opts = [p.opts[0] for p in _command(name).params if p.opts[0] in PROMPT_OPTIONS]
        assert opts == PROMPT_OPTIONS, name


def test_prompt_args_parse_in_order(tmp_path: Path) -> None:
    from workers.commands.prompt_args import PromptArgs

    prompts = PromptArgs(box=["1,2,30,40@3"], point=["5,6", "7,8,0"], text=["person"]).parse()
    assert [p.kind for p in prompts] == ["box", "points", "text"]
    assert prompts[0].box == (1.0, 2.0, 30.0, 40.0) and prompts[0].frame == 3
    assert prompts[1].points == [(5.0, 6.0), (7.0, 8.0)] and prompts[1].labels == [1, 0]
    assert PromptArgs().parse() == []


def test_commands_do_not_import_the_app_and_the_app_is_light() -> None:
    """Each command module imports without workers.cli (no cycle); the app loads no heavy module."""
    code = (
        "import sys, importlib, pkgutil, workers.commands as c\n"
        "for m in pkgutil.iter_modules(c.__path__):\n"
        "    importlib.import_module('workers.commands.' + m.name)\n"
        "assert 'workers.cli' not in sys.modules\n"
        "import workers.cli\n"
        "heavy = {'torch', 'cv2', 'transformers', 'ray', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_control_commands_load_no_heavy_module(redis_url: str) -> None:
    """status, stop, prompt and config run without torch, OpenCV, transformers, Ray or SciPy."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from workers.cli import app\n"
        f"url = {redis_url!r}\n"
        "import redis\n"
        "redis.Redis.from_url(url).hset('dinotrack:light:state', mapping={'status': 'running'})\n"
        "runs = [['status', '--redis', url], ['stop', 'light', '--redis', url], ['config'],\n"
        "        ['prompt', 'light', '--box', '1,1,9,9', '--point', '3,3', '--redis', url]]\n"
        "for args in runs:\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "heavy = {'torch', 'cv2', 'transformers', 'ray', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
