"""Exports of tracking results to files: DAVIS palette PNGs, MOTChallenge txt, COCO JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.masks import box_to_mask, rle_encode
from pipeline.types import FrameResult, TrackState

EXPORTED_STATES: tuple[TrackState, ...] = (TrackState.ACTIVE,)
"""States written by default: confirmed tracks followed in the frame (not tentative, not lost)."""


def davis_palette() -> list[int]:
    """The DAVIS/PASCAL VOC colour map as a flat 768-entry PIL palette (index 0 is black)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def export_davis(
    results: Iterable[FrameResult],
    out_dir: str | Path,
    frame_names: dict[int, str] | None = None,
    states: tuple[TrackState, ...] = EXPORTED_STATES,
) -> list[Path]:
    """One palette PNG per frame whose pixel value is the track id (0 = background).

    Tracks without a mask are drawn as their filled box. Where objects overlap, the later track in
    the frame's list wins. Ids must fit in a byte (1-255).

    Args:
        results: Frame results in any order.
        out_dir: Folder to write to (created).
        frame_names: Frame index -> file stem (e.g. "00000" for "00000.jpg"); default ``%05d``.
        states: Track states to draw.

    Returns:
        Paths written, in the order of ``results``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    palette = davis_palette()
    written = []
    for result in results:
        canvas = np.zeros((result.height, result.width), dtype=np.uint8)
        for track in result.tracks:
            if track.state not in states:
                continue
            if not 1 <= track.id <= 255:
                raise ValueError(
                    f"track id {track.id} in frame {result.frame_index} does not fit a palette PNG "
                    "(1-255); export it with export_coco or export_mot instead"
                )
            mask = track.mask_array()
            if mask is None and track.box is not None:
                mask = box_to_mask(track.box, result.height, result.width)
            if mask is not None:
                canvas[mask] = track.id
        stem = (frame_names or {}).get(result.frame_index, f"{result.frame_index:05d}")
        path = out / f"{Path(stem).stem}.png"
        image = Image.fromarray(canvas)
        image.putpalette(palette)  # an 8-bit grey image becomes a palette image, same indices
        image.save(path)
        written.append(path)
    return written


def export_mot(
    results: Iterable[FrameResult],
    path: str | Path,
    states: tuple[TrackState, ...] = EXPORTED_STATES,
) -> Path:
    """MOTChallenge txt, one line per visible track: ``frame (1-based), id, x, y, w, h, score,
    -1, -1, -1``."""
    lines = []
    for result in sorted(results, key=lambda r: r.frame_index):
        for track in sorted(result.tracks, key=lambda t: t.id):
            if track.state not in states or track.box is None:
                continue
            x0, y0, x1, y1 = track.box
            box = f"{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f}"
            lines.append(f"{result.frame_index + 1},{track.id},{box},{track.score:.4f},-1,-1,-1")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def export_coco(
    results: Iterable[FrameResult],
    path: str | Path,
    frame_names: dict[int, str] | None = None,
    states: tuple[TrackState, ...] = EXPORTED_STATES,
) -> Path:
    """COCO-style JSON: ``images``, ``annotations`` (RLE segmentation, xywh bbox, area, track_id,
    score, category_id) and ``categories`` (one per label; unlabelled tracks are "object").

    Image ids are frame index + 1; a track without a mask gets its filled box as segmentation.
    """
    images, annotations = [], []
    categories: dict[str, int] = {}
    for result in sorted(results, key=lambda r: r.frame_index):
        image_id = result.frame_index + 1
        name = (frame_names or {}).get(result.frame_index, f"{result.frame_index:05d}")
        images.append(
            {
                "id": image_id,
                "file_name": name,
                "width": result.width,
                "height": result.height,
                "frame_index": result.frame_index,
                "source_id": result.source_id,
            }
        )
        for track in result.tracks:
            if track.state not in states or track.box is None:
                continue
            pixels = track.mask_array()
            if pixels is None:
                pixels = box_to_mask(track.box, result.height, result.width)
            label = track.label or "object"
            category = categories.setdefault(label, len(categories) + 1)
            x0, y0, x1, y1 = track.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "track_id": track.id,
                    "score": float(track.score),
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": float(np.count_nonzero(pixels)),
                    "segmentation": track.mask or rle_encode(pixels),
                    "iscrowd": 0,
                }
            )
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in categories.items()],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path
