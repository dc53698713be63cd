"""``dinotrack eval davis``: J&F of the tracker on DAVIS sequences, printed as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workers.commands.options import (
    BackboneName,
    Device,
    MaxFrames,
    SegmenterName,
    ShortSide,
    TrackerConfigFile,
)
from workers.commands.progress import sequence_progress


def davis(
    root: Annotated[
        Path,
        typer.Option("--root", help="DAVIS root holding JPEGImages/480p and Annotations/480p."),
    ],
    sequences: Annotated[
        Path, typer.Option("--sequences", help="Text file of sequence names, one per line.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for predicted masks (<seq>/<frame>.png)."),
    ] = None,
    backbone: BackboneName = "mobilenetv2-imagenet",
    segmenter: SegmenterName = "none",
    short_side: ShortSide = 448,
    device: Device = "auto",
    tracker_config: TrackerConfigFile = None,
    max_frames: MaxFrames = None,
) -> None:
    """Run each sequence with its first-frame mask as the prompt; print J, F and J&F as JSON."""
    import yaml

    from pipeline.eval.davis import dumps, read_sequence_list, run_davis
    from pipeline.models.config import BackboneConfig, SegmenterConfig
    from pipeline.models.registry import build_backbone, build_segmenter
    from pipeline.tracking.config import TrackerConfig

    names = read_sequence_list(sequences)
    cfg = TrackerConfig()
    if tracker_config is not None:
        if not tracker_config.is_file():
            raise FileNotFoundError(f"tracker config {tracker_config} not found: give a YAML file")
        cfg = TrackerConfig.model_validate(yaml.safe_load(tracker_config.read_text()) or {})
    bb = build_backbone(BackboneConfig(name=backbone, short_side=short_side, device=device))
    seg = build_segmenter(segmenter, SegmenterConfig(device=device))
    with sequence_progress(len(names)) as bars:

        def done(seq: str, scores: dict[str, float]) -> None:
            bars.finished(seq, f"J&F {scores['J&F']:.3f} (J {scores['J']:.3f}, F "
                          f"{scores['F']:.3f}), {scores['frames']:.0f} frames")  # fmt: skip

        result = run_davis(root, names, bb, seg, cfg, out, max_frames, bars.frame, done)
    result["setup"] = {
        "backbone": bb.name,
        "segmenter": segmenter,
        "short_side": short_side,
        "root": str(root),
    }
    typer.echo(dumps(result))
