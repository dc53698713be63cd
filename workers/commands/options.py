"""Options that several evaluation commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BackboneName = Annotated[
    str, typer.Option("--backbone", help="Backbone name (see `dinotrack models list`).")
]
SegmenterName = Annotated[
    str, typer.Option("--segmenter", help="none (propagation only) or sam-vit_b|vit_l|vit_h.")
]
ShortSide = Annotated[
    int, typer.Option("--short-side", help="Short side of the backbone input in pixels.")
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
TrackerConfigFile = Annotated[
    Path | None,
    typer.Option("--tracker-config", help="YAML/JSON file with TrackerConfig fields."),
]
