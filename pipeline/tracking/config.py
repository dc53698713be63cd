"""Tracking settings: propagation, identities (association, motion, life cycle,
re-identification) and the tracker. Only pydantic is imported here, so reading settings (e.g.
``pipeline.settings``, the control commands) loads neither torch nor OpenCV."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PropagationConfig(BaseModel):
    """How labels travel from the memory to a new frame (defaults measured on DAVIS-2016 dev with
    the fused stride-8 MobileNetV2 features; see docs/tracking.md).

    Attributes:
        memory_frames: Previous frames kept in memory besides the references (DINO: 7).
        max_references: Prompt frames kept as references (the first is the first prompt).
        topk: Memory patches each query patch keeps, jointly over all memory frames (DINO: 5).
        radius: Neighbourhood radius in grid cells; a query only looks at memory cells within
            this Chebyshev distance (DINO: 12).
        fine_radius: Radius in grid cells within which the memory is seen at full resolution;
            beyond it, up to ``radius``, at half resolution (None or >= radius: full resolution
            everywhere, the plain DINO neighbourhood).
        coarse_sure: With a foveated neighbourhood, propagate at half resolution first and
            compute in full only the tiles where some cell (or a neighbour) has its most likely
            label below this probability; the others keep the half-resolution labels (speed;
            None: every tile in full).
        temperature: Softmax temperature over cosine similarities (DINO: 0.1).
        tile: Side in grid cells of the query tiles of the banded computation (speed only).
        skip_below: Tiles whose neighbourhood has no foreground probability above this in any
            memory frame are set to background without computing (speed only; 0 disables).
    """

    memory_frames: int = Field(7, ge=0)
    max_references: int = Field(4, ge=1)
    topk: int = Field(5, ge=1)
    radius: int = Field(18, ge=0)
    fine_radius: int | None = Field(4, ge=0)
    coarse_sure: float | None = Field(0.8, gt=0, le=1)
    temperature: float = Field(0.1, gt=0)
    tile: int = Field(8, ge=1)
    skip_below: float = Field(1e-3, ge=0, lt=1)


class AssociationConfig(BaseModel):
    """How an observation and a tentative or active track are scored against each other."""

    model_config = ConfigDict(extra="forbid")

    iou_weight: float = Field(0.8, ge=0.0)
    """Weight of overlap (mask or box IoU) in the match score."""
    appearance_weight: float = Field(0.2, ge=0.0)
    """Weight of appearance (prototype cosine similarity) in the match score (low by default:
    measured on MOT15 TUD with MobileNetV2 box-mask prototypes, pedestrians look alike)."""
    appearance_floor: float = Field(0.5, ge=-1.0, lt=1.0)
    """Cosine similarity that counts as no resemblance: similarities in [floor, 1] are mapped to
    [0, 1] in the match score (prototypes of any two objects of one class are rarely far apart)."""
    prototype_momentum: float = Field(0.8, ge=0.0, lt=1.0)
    """Weight of the old running prototype when a matched observation updates it."""
    box_mask_weight: float = Field(0.5, ge=0.0, le=1.0)
    """Weight, in a box-only observation's overlap with a track, of the IoU between its box and the
    track's propagated mask (the rest: box IoU with the motion prediction)."""
    min_iou: float = Field(0.1, ge=0.0, le=1.0)
    """Least overlap of an observation with a tentative or active track's predicted or propagated
    box (or mask) to match it; appearance only chooses among overlapping candidates."""
    tentative_discount: float = Field(0.5, gt=0.0, le=1.0)
    """Tentative tracks' match scores are scaled by this in the one assignment, so that a
    confirmed track wins against a fresh (maybe false) one."""
    gate: float = Field(1.0, gt=0.0)
    """Greatest centre distance, relative to sqrt(track box area), for tentative/active tracks."""
    size_gate: float = Field(3.0, ge=1.0)
    """Greatest ratio between the areas of an observation's box and a track's box (all tracks)."""
    height_weight: float = Field(1.0, ge=0.0)
    """Score taken off a pairing per unit of |log(observed box height / track's averaged box
    height)|: where one person stands in front of another their boxes are nearly concentric and
    differ mostly in height, so the taller box belongs to the nearer (taller) track (0: off)."""
    height_momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """The track height the height term compares with: an exponential average of observed box
    heights with this momentum (slow, so a brief wrong match does not move it)."""
    min_match_score: float = Field(0.3, ge=0.0, le=1.0)
    """Least match score for an observation to join a track (lost tracks too)."""


class MotionConfig(BaseModel):
    """The constant-velocity box model of tracks that follow observations, and the published box."""

    model_config = ConfigDict(extra="forbid")

    max_predict_frames: int = Field(10, ge=0)
    """Constant-velocity prediction runs at most this many frames past the last sighting."""
    velocity_momentum: float = Field(0.7, ge=0.0, lt=1.0)
    """How little a new box changes the velocity (its gain is 1 - this, per frame)."""
    box_smoothing: float = Field(0.6, gt=0.0, le=1.0)
    """Weight of a new box against the predicted one (1: take measured boxes as they are)."""
    coast_frames: int = Field(1, ge=0)
    """Frames with detections that miss a detection-driven track in which it is still published, at
    its constant-velocity predicted box; past that it is published without a box (not visible)
    until a detection matches it again (it stays active for association meanwhile)."""
    coast_min_inside: float = Field(0.5, ge=0.0, le=1.0)
    """Least fraction of a coasted box's area inside the image for it to be published (an object
    walking out of the image is not published past the border)."""
    end_outside: bool = True
    """Whether a detection-driven track that goes unmatched while its constant-velocity predicted
    box lies less than ``coast_min_inside`` inside the image ends there (it has walked out), so
    that it cannot take the detections of someone coming in or passing at the border; False: it
    stays active, then lost, and only box detections may not recover it."""


class LifecycleConfig(BaseModel):
    """When tracks are born, confirmed, lost and ended."""

    model_config = ConfigDict(extra="forbid")

    confirm_frames: int = Field(2, ge=1)
    """Matched frames (birth included) before a tentative track becomes active."""
    tentative_max_misses: int = Field(0, ge=0)
    """Frames a tentative track may go unmatched before it is dropped (its id is not reused); 0:
    confirmation takes consecutive matches, as ByteTrack's (a false detection seldom repeats)."""
    lost_score: float = Field(0.3, ge=0.0, le=1.0)
    """An unmatched active track whose propagated score is below this becomes lost."""
    max_unmatched_frames: int | None = Field(3, ge=1)
    """Frames with observations in which an active track may find no match before it is lost,
    however well propagation says it is doing; None: only the propagated score counts."""
    lost_timeout_frames: int = Field(75, ge=0)
    """Frames a lost track waits for re-identification before it ends."""
    duplicate_iou: float = Field(0.7, ge=0.0, le=1.0)
    """An unmatched observation overlapping a live track's box this much starts no track."""


class ReidConfig(BaseModel):
    """How lost tracks are looked for and re-identified."""

    model_config = ConfigDict(extra="forbid")

    redetect_threshold: float | None = Field(0.6, ge=-1.0, le=1.0)
    """A lost track is looked for in each frame: where its prototype's cosine similarity to the
    patch features peaks above this, the peak region is offered to the identity manager as a
    re-detection (None: no re-detection; lost tracks then come back only through detections or
    re-detecting prompts)."""
    redetect_margin: float = Field(0.15, gt=0.0, le=2.0)
    """The re-detected region is the cells within this similarity of the peak."""
    threshold: float = Field(0.85, ge=-1.0, le=1.0)
    """Least cosine similarity of an observation with a lost track's gallery to recover it."""
    gate: float | None = Field(4.0, gt=0.0)
    """Greatest centre distance, relative to sqrt(track box area), for lost tracks (loose); None:
    a lost track may reappear anywhere."""
    discount: float = Field(0.5, gt=0.0, le=1.0)
    """Lost tracks' match scores are scaled by this in the one assignment, so that a tentative or
    active track wins an observation that a lost track could also take."""
    box_by_looks: bool = False
    """Whether a box-only observation (a detection without a mask) may recover a lost track on
    looks alone anywhere within ``gate``, as masked observations and re-detections may; False:
    it must overlap the track's predicted box by ``association.min_iou``, as for a followed track
    (a box's prototype holds background, and people look alike to ImageNet features: measured on
    MOT15)."""
    gallery_size: int = Field(8, ge=1)
    """Prototypes kept per track for re-identification."""
    gallery_interval: int = Field(5, ge=1)
    """Frames between two prototypes added to a track's gallery."""


class IdentityConfig(BaseModel):
    """How observations become tracks and how tracks are lost, recovered and ended."""

    model_config = ConfigDict(extra="forbid")

    association: AssociationConfig = Field(default_factory=AssociationConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    reid: ReidConfig = Field(default_factory=ReidConfig)


class PresenceConfig(BaseModel):
    """How prompted objects are verified, remembered and searched for (see
    `pipeline.tracking.presence`)."""

    model_config = ConfigDict(extra="forbid")

    verify: bool = True
    """Whether prompted tracks are verified and searched for (False: propagation alone decides,
    as plain DINO-protocol propagation)."""
    topk: int = Field(5, ge=1)
    """Memory cells each query cell weighs (DINO's label propagation: 5)."""
    temperature: float = Field(0.1, gt=0)
    """Softmax temperature over cosine similarities (DINO: 0.1)."""
    present_above: float = Field(0.5, ge=0.0, le=1.0)
    """Mean object probability of the propagated mask under which a frame is judged absent."""
    hidden_below: float = Field(0.3, ge=0.0, le=1.0)
    """A frame whose mask holds fewer cells than this share of the object's running area (an
    average over the frames it was seen, momentum 0.9) is judged absent: mostly hidden or out of
    the view (0: never)."""
    absent_frames: int = Field(2, ge=1)
    """Frames judged absent in a row before the track is lost (none of them shows a box)."""
    recover_above: float = Field(0.7, ge=0.0, le=1.0)
    """Least mean object probability of a region for a lost track to be re-acquired there."""
    min_cells: int = Field(2, ge=1)
    """Least grid cells of a region for a lost track to be re-acquired there."""
    confirm_frames: int = Field(2, ge=1)
    """Frames in a row a lost track must be found at overlapping places before it is re-acquired
    (a look-alike that matches in one frame only does not bring it back)."""
    confident_above: float = Field(0.8, ge=0.0, le=1.0)
    """Least presence of a frame for it to join the appearance memory."""
    memory_frames: int = Field(4, ge=0)
    """Confident frames kept in the memory besides the prompt frame."""
    memory_every: int = Field(10, ge=1)
    """Least frames between two samples added to the memory."""
    object_cells: int = Field(256, ge=1)
    """Most object cells kept per memory frame (evenly subsampled)."""
    background_cells: int = Field(768, ge=1)
    """Most background cells kept per memory frame (a third nearest the object, a third most like
    it, a third spread over the frame)."""
    search_margin: float = Field(0.5, ge=0.0)
    """Local search region of an active track: its cells grown by this times their extent."""
    anchor: bool = True
    """Re-anchor a visible track's mask on its appearance memory every frame: the regions the
    verifier calls object that hold propagated cells become the mask, and are written back into
    the propagation's memory (propagation alone lets thin masks shrink and drift)."""
    anchor_growth: float = Field(0.0, ge=0.0)
    """An object of at least ``anchor_fine_cells`` cells is re-anchored only when the verifier's
    regions add, beyond its propagated cells grown by one cell, more than this share of them (0:
    any cell); otherwise its propagated mask, finer at the edges, stands alone."""
    anchor_fine_cells: int = Field(150, ge=0)
    """Objects of fewer propagated cells are re-anchored whenever the verifier adds a cell: their
    one-cell border is a large part of them (a third of a 10x10-cell object) and the propagated
    edges are no finer than the verifier's there."""
    search_frames: int | None = Field(None, ge=0)
    """Frames a lost track is searched for (None: as long as the video lasts)."""
    searches_per_frame: int | None = Field(2, ge=1)
    """Most lost tracks searched in one frame (each search is a k-NN of every cell of the frame
    against the track's memory), those searched longest ago first: with more lost tracks than
    this, each is searched every few frames and re-acquired a few frames later (None: every lost
    track in every frame)."""


class TrackerConfig(BaseModel):
    """How the tracker follows objects.

    Attributes:
        propagation: Label propagation settings (memory, top-k, neighbourhood, temperature).
        identity: Association, motion, life-cycle and re-identification settings.
        presence: Verification, appearance memory and global search of prompted objects
            (`pipeline.tracking.presence`).
        upsample: How grid probabilities reach full resolution: ``guided`` (edge-aware guided
            filter, masks follow image edges) or ``bilinear``.
        normalize_channels: Rescale each object's upsampled probability map to [0, 1] before the
            per-pixel arg-max (DINO's ``norm_mask``); helps small objects against background.
        min_area: Masks with fewer pixels count as not visible (box None, score 0).
        crop_above: An object's region for upsampling holds its grid cells above this
            probability (and those it wins).
        crop_margin: Grid cells added around that region (the upsampling needs context).
        refine_every: Refine every live mask with the segmenter every this many frames (None: no
            periodic refinement). Ignored with the ``none`` segmenter.
        refine_below: Also refine an object whose confidence falls below this (None: never).
        refine_agreement: Propagated probability above which SAM's pixels are kept: the refined
            mask is SAM's mask restricted to where the propagation gives the object at least this.
    """

    model_config = ConfigDict(extra="forbid")

    propagation: PropagationConfig = Field(default_factory=PropagationConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    presence: PresenceConfig = Field(default_factory=PresenceConfig)
    upsample: Literal["guided", "bilinear"] = "guided"
    normalize_channels: bool = False
    min_area: int = Field(16, ge=0)
    crop_above: float = Field(0.1, gt=0.0, lt=1.0)
    crop_margin: int = Field(2, ge=1)
    refine_every: int | None = Field(None, ge=1)
    refine_below: float | None = Field(None, ge=0.0, le=1.0)
    refine_agreement: float = Field(0.1, ge=0.0, le=1.0)
