"""The motion model of a track that follows observations: constant-velocity prediction, an
alpha-beta box filter, the published box (filtered, coasted, or none) and the walk-out rule.

The published box of a track that follows detections comes from this model, not from the
propagated mask (which is coarse at box level): the filtered box in a frame where a detection
matched it; its constant-velocity prediction for up to ``coast_frames`` frames whose detections
missed it, while that box stays at least ``coast_min_inside`` inside the image; then no box until a
detection matches it again. Tracks no detection ever matched (prompt-only tracks) and frames without
detections keep the propagated box.
"""

from __future__ import annotations

from pipeline.tracking.config import MotionConfig
from pipeline.tracking.records import Box, Identity
from pipeline.types import TrackState


def centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def area(box: Box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def inside_fraction(box: Box, image_size: tuple[int, int]) -> float:
    """Fraction of a box's area inside an image of (height, width); 0 for an empty box."""
    height, width = image_size
    clipped = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height))
    a = area(box)
    return area(clipped) / a if a > 0 else 0.0


def predicted_box(ident: Identity, frame_index: int, config: MotionConfig) -> Box:
    """The last box moved at constant velocity, for at most ``max_predict_frames`` frames."""
    dt = min(max(frame_index - ident.last_seen, 0), config.max_predict_frames)
    dx, dy = ident.velocity[0] * dt, ident.velocity[1] * dt
    x0, y0, x1, y1 = ident.box
    return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def walked_out(
    ident: Identity, frame_index: int, image_size: tuple[int, int] | None, config: MotionConfig
) -> bool:
    """Whether the track's predicted box lies less than ``coast_min_inside`` inside the image
    (False when the image size is not known)."""
    if image_size is None:
        return False
    box = predicted_box(ident, frame_index, config)
    return inside_fraction(box, image_size) < config.coast_min_inside


def left_image(
    ident: Identity, frame_index: int, image_size: tuple[int, int] | None, config: MotionConfig
) -> bool:
    """With ``end_outside``: whether an unmatched detection-driven track (not tentative, not born
    in this frame) has walked out of the image and ends."""
    return (
        config.end_outside
        and ident.state != TrackState.TENTATIVE
        and ident.detected is not None
        and ident.born != frame_index
        and walked_out(ident, frame_index, image_size, config)
    )


def move(ident: Identity, box: Box, frame_index: int, config: MotionConfig) -> None:
    """Alpha-beta filter: blend the measured box with the constant-velocity prediction."""
    box = tuple(float(v) for v in box)
    dt = frame_index - ident.last_seen
    if dt > 0:
        px, py = centre(predicted_box(ident, frame_index, config))
        (cx, cy) = centre(box)
        a = config.box_smoothing
        rx, ry = cx - px, cy - py  # residual against the prediction
        gain = (1 - config.velocity_momentum) / dt
        ident.velocity = (ident.velocity[0] + gain * rx, ident.velocity[1] + gain * ry)
        cx, cy = px + a * rx, py + a * ry
        w0, h0 = ident.box[2] - ident.box[0], ident.box[3] - ident.box[1]
        w = w0 + a * (box[2] - box[0] - w0)
        h = h0 + a * (box[3] - box[1] - h0)
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    ident.box = box
    ident.last_seen = frame_index


def published_box(
    ident: Identity | None,
    frame_index: int,
    image_size: tuple[int, int],
    propagated: Box | None,
    detections_frame: int | None,
    config: MotionConfig,
) -> Box | None:
    """The box to publish for a live track (see the module's description); ``detections_frame``
    is the latest frame that brought detections."""
    if ident is None or ident.detected is None or detections_frame != frame_index:
        return propagated
    if ident.detected == frame_index:
        return ident.box
    if ident.detection_misses > config.coast_frames:
        return None
    box = predicted_box(ident, frame_index, config)
    return box if inside_fraction(box, image_size) >= config.coast_min_inside else None
