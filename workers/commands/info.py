"""``dinotrack probe`` and ``config``: what dinotrack sees of a source, and its settings."""

from __future__ import annotations

import json

from workers.commands.console import guarded, settings_from
from workers.commands.options import ConfigOpt, DebugOpt, SourceArg


def probe(source: SourceArg, debug: DebugOpt = False) -> None:
    """Print what dinotrack sees of SOURCE as JSON (frames, fps, duration, size, codec)."""
    with guarded(debug):
        from pipeline.sources import probe as probe_source

        print(json.dumps(probe_source(source).to_dict(), indent=2))


def show_config(config: ConfigOpt = None) -> None:
    """Print the effective settings (defaults < file < DINOTRACK_* environment) as JSON."""
    with guarded(False):
        from pipeline.redact import redact_url

        settings = settings_from(config).model_dump(mode="json")
        if settings["redis_url"]:
            settings["redis_url"] = redact_url(settings["redis_url"])
        print(json.dumps(settings, indent=2))
