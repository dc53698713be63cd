"""Offline checks of deploy/: the files parse, name real CLI verbs, flags and settings, and install
what pyproject.toml declares. No Docker engine or cluster is needed."""

from __future__ import annotations

import json
import re
import shlex
import typing
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.cuda"]
COMPOSE_FILES = [DEPLOY / "docker-compose.yml", DEPLOY / "docker-compose.gpu.yml"]
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))
CACHE = "/home/dinotrack/.cache"


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli() -> Any:
    import typer.main

    from workers.cli import app

    return typer.main.get_command(app)


def check_dinotrack(cli: Any, args: list[str]) -> None:
    """``args`` (after ``dinotrack``) name a real verb (and sub-verb) and only its real flags.

    ``cli`` is the click group typer builds (typer ships its own copy of click, hence duck typing:
    a group has ``commands``, a command has ``params``).
    """
    command = cli
    path = ["dinotrack"]
    rest = list(args)
    while hasattr(command, "commands"):
        assert rest, f"'{' '.join(path)}' needs a verb: one of {sorted(command.commands)}"
        verb = rest.pop(0)
        assert verb in command.commands, (
            f"'{' '.join(path)} {verb}' is not a command (have {sorted(command.commands)})"
        )
        command, path = command.commands[verb], [*path, verb]
    flags = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
    for token in rest:
        if token.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", token):
            flag = token.split("=", 1)[0]
            assert flag in flags, f"'{' '.join(path)}' has no option {flag} (has {sorted(flags)})"


def shell_segments(script: str) -> list[list[str]]:
    """Simple commands of a shell script (split at ; && || | and newlines), as token lists."""
    text = script.replace("\\\n", " ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace_split = True
    lexer.whitespace = " \t\r"
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in {";", "&&", "||", "|", "&", "\n"} or set(token) <= set(";&|\n"):
            segments.append([])
        else:
            segments[-1].append(token)
    out = []
    for seg in segments:
        while seg and (seg[0] in {"exec", "then", "do"} or re.fullmatch(r"\w+=.*", seg[0])):
            seg = seg[1:]
        if seg:
            out.append(seg)
    return out


def commands_of(argv: list[str] | str) -> list[list[str]]:
    """Simple commands a container runs: exec form, ``bash -c SCRIPT`` or a shell string."""
    if isinstance(argv, str):
        return shell_segments(argv)
    argv = [a for a in argv if a != "--"]
    if argv and argv[0] in {"tini"}:
        argv = argv[1:]
    if len(argv) >= 3 and Path(argv[0]).name in {"bash", "sh"} and argv[1] in {"-c", "-lc"}:
        return [seg for script in argv[2:] for seg in shell_segments(script)]
    return [argv] if argv else []


def check_container_commands(cli: Any, argv: list[str] | str) -> list[list[str]]:
    """Check the ``dinotrack`` and ``ray`` invocations in ``argv``; returns the dinotrack ones."""
    found = []
    for seg in commands_of(argv):
        if seg[0] == "dinotrack":
            check_dinotrack(cli, seg[1:])
            found.append(seg)
        elif seg[0] == "ray":
            check_ray(seg[1:])
    return found


def check_ray(args: list[str]) -> None:
    from ray.scripts.scripts import cli as ray_cli

    assert args and args[0] in ray_cli.commands, f"'ray {' '.join(args[:1])}' is not a ray command"
    flags = {opt for p in ray_cli.commands[args[0]].params for opt in p.opts}
    for token in args[1:]:
        if token.startswith("--"):
            assert token.split("=", 1)[0] in flags, f"'ray {args[0]}' has no option {token}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        model = _model_of(arg)
        if model is not None:
            return model
    return None


def settings_path(env_name: str) -> list[str]:
    """The Settings field path of a ``DINOTRACK_*`` variable; fails naming the bad part."""
    from pipeline.settings import Settings

    assert env_name.startswith("DINOTRACK_"), env_name
    parts = env_name[len("DINOTRACK_") :].lower().split("__")
    model: type[BaseModel] | None = Settings
    path: list[str] = []
    for i, part in enumerate(parts):
        assert model is not None, f"{env_name}: '{'.'.join(path)}' has no nested fields"
        fields = {name.lower(): (name, f) for name, f in model.model_fields.items()}
        assert part in fields, (
            f"{env_name}: '{part}' is not a field of {model.__name__} (fields: {sorted(fields)})"
        )
        name, info = fields[part]
        path.append(name)
        model = _model_of(info.annotation) if i < len(parts) - 1 else None
    return path


def check_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The DINOTRACK_* variables name real settings and load to the values given."""
    from pipeline.settings import load_settings

    ours = {k: str(v) for k, v in env.items() if k.startswith("DINOTRACK_")}
    paths = {k: settings_path(k) for k in ours}
    with monkeypatch.context() as m:
        for k, v in ours.items():
            m.setenv(k, v)
        settings = load_settings()
    for k, path in paths.items():
        value: Any = settings
        for name in path:
            value = getattr(value, name)
        if isinstance(value, list):  # a JSON list in the environment
            assert [str(v) for v in value] == json.loads(ours[k]), f"{k} loads as {value!r}"
            continue
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        assert shown == ours[k], f"{k}={ours[k]!r} loads as {value!r}"


def env_of_k8s(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def pyproject_dependencies() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


# --- the settings walker itself ------------------------------------------------------------------


def test_settings_path_accepts_nested_fields_and_names_bad_parts():
    assert settings_path("DINOTRACK_RAY__ADDRESS") == ["ray", "address"]
    assert settings_path("DINOTRACK_BACKBONE__NAME") == ["backbone", "name"]
    with pytest.raises(AssertionError, match="'adress' is not a field of RayConfig"):
        settings_path("DINOTRACK_RAY__ADRESS")
    with pytest.raises(AssertionError, match="has no nested fields"):
        settings_path("DINOTRACK_REDIS_URL__HOST")


def test_shell_segments_split_scripts_into_commands():
    script = "ulimit -n 65536; ${X/--block/} && exec dinotrack worker --address auto"
    assert shell_segments(script) == [
        ["ulimit", "-n", "65536"], ["${X/--block/}"], ["dinotrack", "worker", "--address", "auto"]
    ]  # fmt: skip


# --- Dockerfiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_pyproject_and_runs_a_real_command(path: Path, cli):
    instructions = dockerfile_instructions(path)
    deps = {re.sub(r"\s+", "", d) for d in pyproject_dependencies()}
    runs = [rest for word, rest in instructions if word == "RUN"]
    installs = [seg for r in runs for seg in shell_segments(r) if seg[:2] == ["pip", "install"]
                or seg[:4] == ["python", "-m", "pip", "install"]]  # fmt: skip
    assert installs, f"{path.name} installs nothing with pip"
    project_installed = False
    for seg in installs:
        args = seg[seg.index("install") + 1 :]
        skip_next = False
        for token in args:
            if skip_next:
                skip_next = False
            elif token in {"--index-url", "-i", "--extra-index-url", "-r", "-c"}:
                skip_next = True
            elif token.startswith("-"):
                continue
            elif token == ".":
                project_installed = True
            else:  # a requirement: it must be pyproject's own, with the same version range
                name = re.split(r"[<>=!~\[ ]", token, maxsplit=1)[0]
                assert token.replace(" ", "") in deps or token in deps, (
                    f"{path.name} installs '{token}' but pyproject.toml declares "
                    f"{[d for d in deps if d.startswith(name)] or 'no ' + name}"
                )
    assert project_installed, f"{path.name} never runs 'pip install .' (pyproject's dependencies)"

    copies = [rest.split() for word, rest in instructions if word == "COPY"]
    ignore = (path.parent / f"{path.name}.dockerignore").read_text().split()
    for *sources, _ in copies:
        for src in sources:
            assert (ROOT / src).exists(), f"{path.name} copies '{src}', which is not in the repo"
            assert f"!{src.rstrip('/')}" in ignore or f"!{src.rstrip('/')}/" in ignore, (
                f"{path.name}.dockerignore leaves '{src}' out of the build context"
            )
    assert [s for *srcs, _ in copies for s in srcs if s.endswith(".toml")] == ["pyproject.toml"]

    apt = " ".join(r for r in runs if "apt-get install" in r)
    for lib in ("libgl1", "libglib2.0-0"):  # opencv's system libraries
        assert lib in apt.split(), f"{path.name} does not install {lib}"

    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert f"HF_HOME={CACHE}/huggingface" in env.split()
    volumes = [v for word, rest in instructions if word == "VOLUME" for v in yaml.safe_load(rest)]
    assert volumes == [CACHE], "the model cache (HF_HOME, ~/.cache/dinotrack) must be a volume"
    assert ("USER", "dinotrack") in instructions  # so that ~ is /home/dinotrack

    import json

    entry = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    cmd = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert len(cmd) == 1 and len(entry) == 1
    found = check_container_commands(cli, entry[0] + cmd[0])
    assert [seg[:2] for seg in found] == [["dinotrack", "worker"]]


def test_cuda_dockerfile_takes_cuda_torch_wheels():
    text = (DEPLOY / "Dockerfile.cuda").read_text()
    assert re.search(r"ARG TORCH_INDEX=https://download\.pytorch\.org/whl/cu\d+", text)
    assert "whl/cpu" in (DEPLOY / "Dockerfile").read_text()


# --- Compose -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_has_persistent_redis_a_ray_head_and_workers(compose, cli):
    services = compose["services"]
    assert {"redis", "ray-head", "worker"} <= set(services)
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[0] == "redis-server"
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])

    head = commands_of(services["ray-head"]["command"])
    assert head[0][:3] == ["ray", "start", "--head"]
    check_container_commands(cli, services["ray-head"]["command"])

    worker = services["worker"]
    found = check_container_commands(cli, worker["command"])
    assert [seg[:2] for seg in found] == [["dinotrack", "worker"]]
    ray_start = commands_of(worker["command"])[0]
    assert ray_start[:2] == ["ray", "start"] and "--address=ray-head:6379" in ray_start
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "container_name" not in worker, "a fixed name would stop `--scale worker=N`"
    assert any(v.startswith("models:") and v.split(":")[1] == CACHE for v in worker["volumes"])
    assert set(compose["volumes"]) >= {"models", "redis-data"}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_settings_are_real_and_load(path: Path, monkeypatch):
    services = yaml.safe_load(path.read_text())["services"]
    for name, service in services.items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{path.name}: {name}.environment must be a mapping"
        check_env(env, monkeypatch)
        hf_home = env.get("HF_HOME")
        assert hf_home is None or hf_home.startswith(CACHE + "/")


def test_compose_worker_reaches_redis_by_service_name(compose):
    env = compose["services"]["worker"]["environment"]
    assert env["DINOTRACK_REDIS_URL"] == "redis://redis:6379/0"
    assert env["DINOTRACK_RAY__ADDRESS"] == "auto"


# --- Kubernetes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in K8S_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def _containers(pod_spec: dict) -> list[dict]:
    return pod_spec.get("initContainers", []) + pod_spec["containers"]


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S_FILES if p.name != "kustomization.yaml"}


def test_raycluster_head_and_gpu_workers_run_real_commands(manifests, cli, monkeypatch):
    cluster = manifests[("RayCluster", "dinotrack")]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    for container in _containers(head["template"]["spec"]):
        check_container_commands(cli, container["command"] + container.get("args", []))
        assert "KUBERAY_GEN_RAY_START_CMD" in " ".join(container["args"])

    [group] = cluster["spec"]["workerGroupSpecs"]
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    pod = group["template"]["spec"]
    workers = []
    for container in _containers(pod):
        found = check_container_commands(cli, container["command"] + container.get("args", []))
        workers += [seg for seg in found if seg[1] == "worker"]
        check_env(env_of_k8s(container), monkeypatch)
    assert len(workers) == 1
    [main] = [c for c in pod["containers"] if c["name"] == "ray-worker"]
    script = " ".join(main["args"])
    assert "${KUBERAY_GEN_RAY_START_CMD/--block/}" in script  # joins Ray, then runs the worker
    assert main["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = env_of_k8s(main)
    assert env["DINOTRACK_REDIS_URL"] == "redis://dinotrack-redis:6379/0"
    assert env["DINOTRACK_RAY__ADDRESS"] == "auto"
    assert env["HF_HOME"].startswith(CACHE + "/")
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in pod["volumes"] if "persistentVolumeClaim" in v}  # fmt: skip
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert claims[mounts[CACHE]] in {
        name for kind, name in manifests if kind == "PersistentVolumeClaim"
    }
    ports = {p["containerPort"] for p in main["ports"]}
    metrics_port = workers[0][workers[0].index("--metrics-port") + 1]
    http_port = workers[0][workers[0].index("--http-port") + 1]
    assert {int(metrics_port), int(http_port)} <= ports
    service = manifests[("Service", "dinotrack-workers")]
    assert service["spec"]["selector"]["ray.io/group"] == group["groupName"]


def test_redis_deployment_is_persistent_and_served(manifests):
    deployment = manifests[("Deployment", "dinotrack-redis")]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    data = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["data"]
    assert args[args.index("--dir") + 1] == data
    [volume] = pod["spec"]["volumes"]
    assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in manifests
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    service = manifests[("Service", "dinotrack-redis")]
    labels = pod["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["port"] == 6379


# --- README --------------------------------------------------------------------------------------


def test_readme_commands_are_real(cli):
    text = (DEPLOY / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`(dinotrack [^`]+)`", text)
    checked = []
    for script in [*blocks, *inline]:
        for seg in shell_segments(re.sub(r"#[^\n]*", "", script)):
            if seg[0] in {"docker", "kubectl"} and "exec" in seg and "dinotrack" in seg:
                seg = seg[seg.index("dinotrack") :]
            if seg[0] == "dinotrack":
                check_dinotrack(cli, seg[1:])
                checked.append(seg[1])
    assert {"submit", "status", "tail", "stop", "render", "models"} <= set(checked)
    submit = next(s for s in blocks if "dinotrack submit rtsp://" in s)
    assert "--source-id cam1" in submit and "--box" in submit
