"""``dinotrack eval lt``: the VOT-LT F-score of the tracker on long-term sequences, as JSON."""

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


def lt(
    root: Annotated[
        Path,
        typer.Option("--root", help="Folder of sequences: <name>/img/*.jpg and groundtruth.txt."),
    ],
    sequences: Annotated[
        Path | None,
        typer.Option("--sequences", help="Text file of sequence names (default: every folder)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for per-frame reports (<seq>.txt: x,y,w,h,score)."),
    ] = None,
    backbone: BackboneName = "mobilenetv2-imagenet",
    segmenter: SegmenterName = "none",
    short_side: ShortSide = 448,
    device: Device = "auto",
    tracker_config: TrackerConfigFile = None,
    max_frames: MaxFrames = None,
) -> None:
    """Track each sequence from its first ground-truth box; print precision, recall, F, absent
    frames shown and absences re-acquired per sequence and their mean, as JSON."""
    import yaml

    from pipeline.eval.longterm import dumps, list_sequences, run_longterm
    from pipeline.models.config import BackboneConfig, SegmenterConfig
    from pipeline.models.registry import build_backbone, build_segmenter
    from pipeline.tracking.tracker import TrackerConfig

    names = list_sequences(root, sequences)
    cfg = TrackerConfig()
    if tracker_config is not None:
        if not tracker_config.is_file():
            raise typer.BadParameter(f"tracker config {tracker_config} not found: give a YAML file")
        cfg = TrackerConfig.model_validate(yaml.safe_load(tracker_config.read_text()) or {})
    bb = build_backbone(BackboneConfig(name=backbone, short_side=short_side, device=device))
    seg = build_segmenter(segmenter, SegmenterConfig(device=device))
    with sequence_progress(len(names)) as bars:

        def done(seq: str, scores: dict) -> None:
            shown = scores["absent_shown"]
            bars.finished(seq, f"F {100 * scores['F']:.1f} (Pr {100 * scores['Pr']:.1f}, "
                          f"Re {100 * scores['Re']:.1f}), absent shown "
                          f"{'-' if shown is None else f'{shown:.0%}'}, re-acquired "
                          f"{scores['reacquired']}/{scores['absences']}")  # fmt: skip

        result = run_longterm(root, names, bb, seg, cfg, out, max_frames=max_frames,
                              progress=bars.frame, sequence_done=done)  # fmt: skip
    result["setup"] = {
        "backbone": bb.name,
        "segmenter": segmenter,
        "short_side": short_side,
        "root": str(root),
    }
    typer.echo(dumps(result))
