"""Every option the CLI shares, declared once (``Annotated`` aliases for command signatures)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# --- where settings and results live -------------------------------------------------------
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Settings file (YAML, JSON or TOML).")
]
RedisOpt = Annotated[
    str | None,
    typer.Option(
        "--redis",
        help="Redis URL (redis://, rediss://, user:password@). Default: DINOTRACK_REDIS_URL, "
        "else an embedded server in --data-dir.",
    ),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Embedded Redis data folder [./.dinotrack].")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and Ray logs.")]
FreshOpt = Annotated[
    bool, typer.Option("--fresh", help="If the source id has results, delete them and start over.")
]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="If the source id has results, continue from its checkpoint."),
]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Ray cluster address (auto: join a running one).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

# --- what a job reads and how --------------------------------------------------------------
SourceArg = Annotated[str, typer.Argument(help="Video file, image folder, or stream URL.")]
SourceIdOpt = Annotated[
    str | None,
    typer.Option("--source-id", help="Names the Redis keys [file stem]."),
]
PublishedSourceIdOpt = Annotated[
    str, typer.Option("--source-id", help="Source whose published results to read.")
]
StrideOpt = Annotated[int | None, typer.Option("--stride", help="Process every Nth frame.")]
StartOpt = Annotated[str | None, typer.Option("--start", help="First frame: index or HH:MM:SS.")]
EndOpt = Annotated[
    str | None,
    typer.Option(
        "--end", help="End of the range, exclusive: index or HH:MM:SS (--end 10: frames 0-9)."
    ),
]

# --- models ----------------------------------------------------------------------------------
_backbone = typer.Option(
    "--backbone",
    help="auto | dinov2-small|base|large | dino-vits16|vits8|vitb16|vitb8 | mobilenetv2-imagenet "
    "(see `dinotrack models list`).",
)
_segmenter = typer.Option(
    "--segmenter", help="none (propagation only) | sam-vit_b | sam-vit_l | sam-vit_h"
)
BackboneOpt = Annotated[str | None, _backbone]
"""--backbone of a job: None keeps the settings' backbone."""
BackboneName = Annotated[str, _backbone]
"""--backbone of an evaluation: always a name."""
SegmenterOpt = Annotated[str | None, _segmenter]
SegmenterName = Annotated[str, _segmenter]
ShortSide = Annotated[
    int, typer.Option("--short-side", help="Short side of the backbone input in pixels.")
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
MaxFrames = Annotated[
    int | None, typer.Option("--max-frames", help="Only the first N frames per sequence.")
]
TrackerConfigFile = Annotated[
    Path | None,
    typer.Option("--tracker-config", help="YAML/JSON file with TrackerConfig fields."),
]

# --- prompts (gathered into `PromptArgs`) ----------------------------------------------------
BoxOpt = Annotated[list[str], typer.Option("--box", help="x0,y0,x1,y1[@frame] (repeatable).")]
MaskOpt = Annotated[
    list[str], typer.Option("--mask", help="PNG[@frame]: each non-zero id is an object.")
]
PointOpt = Annotated[list[str], typer.Option("--point", help="x,y[,label][@frame] (label 1 or 0).")]
TextOpt = Annotated[
    list[str], typer.Option("--text", help="Categories or a phrase (open-vocabulary).")
]
ExemplarOpt = Annotated[
    list[str],
    typer.Option("--exemplar", help="ref.jpg:x0,y0,x1,y1[@frame]: find that object by looks."),
]
ExemplarThresholdOpt = Annotated[
    float, typer.Option("--exemplar-threshold", help="Cosine similarity an exemplar match needs.")
]
DetectionsOpt = Annotated[
    str | None, typer.Option("--detections", help="External detections: MOT det.txt or JSON.")
]
PromptsOpt = Annotated[
    Path | None, typer.Option("--prompts", help="Prompt JSON file (docs/prompts.md).")
]
