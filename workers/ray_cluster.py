"""Starting or joining Ray: a local cluster on loopback only, every cluster with token auth.

A local cluster (``dinotrack run``, ``dinotrack worker`` without ``--address``) listens on
127.0.0.1 only: nothing on the network can reach its GCS, raylet or workers. Ray binds its gRPC
servers to loopback only when the node's IP is 127.0.0.1, and ``ray.init(_node_ip_address=...)``
replaces a loopback address by the machine's routable one unless Ray believes multi-node clusters
are off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ``ray`` is imported). So for the start
of a local cluster that switch is turned off in this process and in the Ray processes it starts,
and the node's address is checked afterwards: a Ray that ignores it fails loudly, it never listens
on all interfaces silently.

Every cluster uses Ray's token authentication (``RAY_AUTH_MODE=token``). A local cluster makes its
token on the first start, in ``~/.ray/auth_token`` (Ray's default; ``RAY_AUTH_TOKEN`` or
``RAY_AUTH_TOKEN_PATH`` name another), and later processes find it there. To join a cluster
(``--address``), this process needs that cluster's token; deploy/README.md shows how it is made and
shared. ``RAY_AUTH_MODE=disabled`` is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.settings import Settings

LOOPBACK = "127.0.0.1"
_CLUSTERS_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayStartError(RuntimeError):
    """Ray cannot be started or joined safely; the message says what to do."""


def init_ray(settings: Settings) -> None:
    """Join the configured cluster (token auth), or start a local Ray on loopback (token auth)."""
    import ray

    if ray.is_initialized():
        return
    require_token_auth()
    kwargs: dict[str, Any] = {
        "include_dashboard": settings.ray.include_dashboard,
        "log_to_driver": settings.debug,
        "configure_logging": False,
    }
    if settings.ray.address:
        if not token_available():
            raise RayStartError(
                f"no Ray auth token to join the cluster at {settings.ray.address} — put the "
                "cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN (see deploy/README.md)"
            )
        ray.init(address=settings.ray.address, **kwargs)
        return
    _start_local(num_cpus=settings.ray.num_cpus or os.cpu_count() or 2, **kwargs)


def require_token_auth() -> None:
    """Turn Ray's token authentication on for this process and the Ray processes it starts."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        raise RayStartError(
            f"RAY_AUTH_MODE={mode}: dinotrack runs Ray with token authentication only — unset "
            "RAY_AUTH_MODE (a local Ray makes its token in ~/.ray/auth_token; to join a cluster, "
            "see deploy/README.md)"
        )
    if mode is None:
        from ray._raylet import Config

        os.environ["RAY_AUTH_MODE"] = "token"
        Config.initialize("")  # Ray read its config when it was imported: read it again


def token_available() -> bool:
    """Whether Ray can find a token: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or the default."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).is_file()


def _start_local(**kwargs: Any) -> None:
    import ray
    from ray._private import ray_constants

    previous = os.environ.get(_CLUSTERS_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTERS_SWITCH] = "0"  # the Ray processes started now keep to loopback too
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: this process
    try:
        context = ray.init(_node_ip_address=LOOPBACK, **kwargs)
    finally:
        if previous[0] is None:
            os.environ.pop(_CLUSTERS_SWITCH, None)
        else:
            os.environ[_CLUSTERS_SWITCH] = previous[0]
        ray_constants.ENABLE_RAY_CLUSTER = previous[1]
    node_ip = context.address_info["node_ip_address"]
    if node_ip != LOOPBACK:
        ray.shutdown()
        raise RayStartError(
            f"the local Ray listens on {node_ip}, not on {LOOPBACK} only — this Ray version "
            f"ignores {_CLUSTERS_SWITCH}=0; pin ray to the version in pyproject.toml"
        )
