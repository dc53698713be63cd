"""Which Redis a command talks to: --redis, DINOTRACK_REDIS_URL, or the embedded server."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from pipeline.outputs.redis_streams import connect
from pipeline.redact import redact_url
from pipeline.settings import Settings
from workers.embedded_redis import EmbeddedRedis


@contextlib.contextmanager
def redis_url_for(settings: Settings, announce: bool = True) -> Iterator[str]:
    """Yield a reachable Redis URL; an embedded server started here is stopped (data kept) after."""
    if settings.redis_url:
        connect(settings.redis_url).close()
        yield settings.redis_url
        return
    server = EmbeddedRedis(settings.data_dir)
    url = server.start()
    if announce:
        where = "started" if server.owned else "running"
        where = f"{where} at {redact_url(url)}"
        print(f"embedded Redis {where} (data in {server.data_dir})", file=sys.stderr)
    try:
        yield url
    finally:
        server.stop()
