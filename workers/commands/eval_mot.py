"""``dinotrack eval mot``: dinotrack and box-only peers on one MOTChallenge sequence, as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from workers.commands.options import (
    BackboneName,
    Device,
    SegmenterName,
    ShortSide,
    TrackerConfigFile,
)
from workers.commands.progress import sequence_progress


def mot(
    seq: Annotated[
        Path,
        typer.Option(
            "--seq", help="MOTChallenge sequence folder: seqinfo.ini, gt/gt.txt, img1/ or a video."
        ),
    ],
    detections: Annotated[
        Path | None,
        typer.Option(
            "--detections",
            help="MOT det.txt given to every tracker; default: seeded noisy detections from gt.",
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", help="dinotrack's tracks (MOT txt); peers' go next to it."),
    ] = Path("runs/mot/tracks.txt"),
    drop: Annotated[
        float, typer.Option("--drop", help="Noise: fraction of gt boxes dropped.")
    ] = 0.10,
    jitter: Annotated[
        float, typer.Option("--jitter", help="Noise: box jitter std as a fraction of its size.")
    ] = 0.05,
    false_positives: Annotated[
        float, typer.Option("--false-positives", help="Noise: false positives per gt box.")
    ] = 0.05,
    seed: Annotated[int, typer.Option("--seed", help="Noise: random seed.")] = 0,
    backbone: BackboneName = "mobilenetv2-imagenet",
    segmenter: SegmenterName = "none",
    short_side: ShortSide = 448,
    device: Device = "auto",
    tracker_config: TrackerConfigFile = None,
    peers: Annotated[
        bool,
        typer.Option("--peers/--no-peers", help="Also run the box-only peer trackers."),
    ] = True,
) -> None:
    """Track SEQ with dinotrack and the peers on the same detections; print HOTA, IDF1, MOTA, ID
    switches of each as JSON."""
    import yaml

    from pipeline.eval.mot import PEERS, read_sequence, run_mot
    from pipeline.eval.noise import NoiseConfig, make_noisy_detections
    from pipeline.models.config import BackboneConfig, SegmenterConfig
    from pipeline.models.registry import build_backbone, build_segmenter
    from pipeline.tracking.config import TrackerConfig

    sequence = read_sequence(seq)
    noise = None
    if detections is None:
        noise = NoiseConfig(drop_rate=drop, jitter=jitter, fp_rate=false_positives, seed=seed)
        if sequence.size is None:
            raise typer.BadParameter(
                f"{seq}/seqinfo.ini declares no imWidth/imHeight, needed to place false "
                "positives; add them or pass --detections"
            )
        detections = make_noisy_detections(
            sequence.gt_path, out.with_name(f"{out.stem}.det.txt"), sequence.size, noise
        )
        typer.echo(
            f"no --detections: made noisy detections from gt ({drop:.0%} dropped, {jitter:.0%} "
            f"jitter, {false_positives:.0%} false positives, seed {seed}) at {detections}",
            err=True,
        )
    elif not detections.is_file():
        raise typer.BadParameter(f"detections file {detections} does not exist")
    cfg = TrackerConfig()
    if tracker_config is not None:
        if not tracker_config.is_file():
            raise typer.BadParameter(f"tracker config {tracker_config} not found: give a YAML file")
        cfg = TrackerConfig.model_validate(yaml.safe_load(tracker_config.read_text()) or {})
    bb = build_backbone(BackboneConfig(name=backbone, short_side=short_side, device=device))
    seg = build_segmenter(segmenter, SegmenterConfig(device=device))
    with sequence_progress(1) as bars:

        def on_frame(index: int) -> None:
            bars.frame(sequence.name, index + 1, sequence.length)

        peer_names = PEERS if peers else ()
        result = run_mot(seq, detections, out, bb, seg, cfg, peers=peer_names, progress=on_frame)
        ours = result["dinotrack"]
        scores = ", ".join(f"{k} {ours[k]:.1f}" for k in ("HOTA", "IDF1", "MOTA"))
        bars.finished(sequence.name, f"dinotrack {scores}, {ours['fps']:.1f} fps")
    for note in result.get("notes", []):
        typer.echo(note, err=True)
    result["setup"] = {
        "backbone": bb.name,
        "segmenter": segmenter,
        "short_side": short_side,
        "noise": None if noise is None else noise.model_dump(),
    }
    typer.echo(json.dumps(result, indent=1))
