"""The local Ray listens on loopback only and uses token authentication (real Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from pipeline.settings import load_settings
from tests.conftest import non_loopback_ipv4, reachable
from workers.ray_cluster import LOOPBACK, RayStartError, init_ray, require_token_auth

ROOT = Path(__file__).resolve().parents[2]


def test_local_ray_gcs_is_not_reachable_on_a_non_loopback_address() -> None:
    import ray

    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try the GCS port on")
    init_ray(load_settings(ray={"num_cpus": 2}))
    host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
    assert host == LOOPBACK
    assert reachable(LOOPBACK, int(port))
    assert not reachable(address, int(port)), f"GCS port {port} answers on {address}"
    # nothing the Ray session started listens beyond loopback (raylet, workers, agents)
    session = ray._private.worker.global_worker.node.get_session_dir_path()
    ours = {p.pid for p in psutil.process_iter() if _in_session(p, session)}
    listening = [c for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.pid in ours]
    assert listening, "found no listening socket of the Ray session"
    assert {c.laddr.ip.removeprefix("::ffff:") for c in listening} == {LOOPBACK}
    assert os.environ["RAY_AUTH_MODE"] == "token"


def _in_session(process: psutil.Process, session: str) -> bool:
    try:
        return any(session in arg for arg in process.cmdline()) or process.pid == os.getpid()
    except psutil.Error:
        return False


def test_first_local_ray_makes_the_token_and_a_later_process_finds_it(tmp_path: Path) -> None:
    code = (
        "import json, ray\n"
        "from pipeline.settings import load_settings\n"
        "from workers.ray_cluster import init_ray\n"
        "init_ray(load_settings(ray={'num_cpus': 1}))\n"
        "node_ip = ray.get(ray.remote(lambda: ray.util.get_node_ip_address()).remote())\n"
        "print(json.dumps([node_ip, ray.get_runtime_context().gcs_address]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    token = tmp_path / ".ray" / "auth_token"
    seen = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=180, cwd=ROOT)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        node_ip, gcs = json.loads(proc.stdout.strip().splitlines()[-1])
        assert node_ip == LOOPBACK and gcs.startswith(f"{LOOPBACK}:")
        assert len(token.read_text()) == 64  # 256-bit hex token, made by the first start
        seen.append(token.read_text())
    assert seen[0] == seen[1]


def test_disabled_ray_auth_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(
        RayStartError, match="RAY_AUTH_MODE=disabled: dinotrack runs Ray with token auth"
    ):
        require_token_auth()
