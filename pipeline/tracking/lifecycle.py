"""Track identities: the life cycle of the tracks of one source.

The `IdentityManager` is told, every frame, what propagation says about each live track
(`TrackedObject`) and what was newly seen (`pipeline.types.Observation`, from prompts, an external
detector or the re-detection of lost tracks, each with its feature prototype). It links
observations to tracks with ONE Hungarian assignment over `association.pair_score` (tentative and
active tracks) and `reid.lost_pair_score` (lost tracks); matched observations move a track's motion
model (`motion`).

Unmatched observations start tentative tracks, confirmed after ``confirm_frames`` matched frames.
Prompt observations always start confirmed tracks. An active track whose propagated score falls
under ``lost_score`` (or that propagation no longer reports) becomes lost; it keeps a bounded
gallery of prototypes and is recovered when a matching observation comes back, or ended after
``lost_timeout_frames``. A track that follows detections ends as soon as it goes unmatched while its
constant-velocity prediction lies less than ``coast_min_inside`` inside the image (it has walked
out; ``end_outside``), so that it cannot take the detections of someone coming in at the border.
Ids grow from 1 and are never reused; ended tracks are dropped from memory.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from typing import Any

import numpy as np

from pipeline.masks import box_iou
from pipeline.tracking import motion
from pipeline.tracking.association import assign, pair_score, track_view, unit
from pipeline.tracking.config import IdentityConfig
from pipeline.tracking.records import Box, Identity, IdentityUpdate, TrackedObject
from pipeline.tracking.reid import add_to_gallery, lost_pair_score
from pipeline.types import Event, Observation, TrackState


class IdentityManager:
    """Gives observations track ids, and tracks their life cycle, for one source.

    Args:
        config: Association, motion, life-cycle and re-identification settings.
        source_id: Source named in the events.
    """

    def __init__(self, config: IdentityConfig | None = None, source_id: str = "") -> None:
        self.config = config or IdentityConfig()
        self.source_id = source_id
        self._tracks: dict[int, Identity] = {}
        self._next_id = 1
        self._events: list[Event] = []
        self.last_update = IdentityUpdate()
        """What the latest `update` decided (e.g. to report detection boxes of matched tracks)."""
        self._detections_frame: int | None = None  # latest frame that brought detections

    # ----------------------------------------------------------------------------------------
    # queries

    def state(self, track_id: int) -> TrackState:
        """State of a track; ENDED for an id that was given out and has since been dropped."""
        ident = self._tracks.get(track_id)
        if ident is not None:
            return ident.state
        if 1 <= track_id < self._next_id:
            return TrackState.ENDED
        raise KeyError(f"track id {track_id} was never given out by source {self.source_id!r}")

    def label(self, track_id: int) -> str | None:
        """Label of a live track (from its first labelled observation), or None."""
        ident = self._tracks.get(track_id)
        return None if ident is None else ident.label

    def live_ids(self, states: tuple[TrackState, ...] | None = None) -> list[int]:
        """Ids of tracks not yet ended (optionally only those in ``states``), ascending."""
        return sorted(tid for tid, t in self._tracks.items() if states is None or t.state in states)

    def prototype(self, track_id: int) -> np.ndarray | None:
        """Running (L2-normalised) appearance prototype of a live track, or None."""
        ident = self._tracks.get(track_id)
        return None if ident is None else ident.prototype

    def published_box(
        self, track_id: int, frame_index: int, image_size: tuple[int, int], propagated: Box | None
    ) -> Box | None:
        """The box to publish for a live track in this frame (after `update` for it).

        Args:
            track_id: The track.
            frame_index: The frame of the latest `update`.
            image_size: (height, width) of the frame.
            propagated: The box of the track's propagated (or corrected) mask, or None.

        Returns:
            For a track no detection ever matched, or in a frame without detections: the
            propagated box. Otherwise the motion model's: the filtered box when a detection matched
            it in this frame; its constant-velocity prediction for the first ``coast_frames``
            frames whose detections missed it, if at least ``coast_min_inside`` of it lies in the
            image; else None (not visible).
        """
        return motion.published_box(
            self._tracks.get(track_id),
            frame_index,
            image_size,
            propagated,
            self._detections_frame,
            self.config.motion,
        )

    def pop_events(self) -> list[Event]:
        """Events since the last call (track.started/lost/recovered/ended), oldest first."""
        events, self._events = self._events, []
        return events

    # ----------------------------------------------------------------------------------------
    # per-frame update

    def update(
        self,
        frame_index: int,
        tracked: list[TrackedObject],
        observations: list[Observation],
        image_size: tuple[int, int] | None = None,
    ) -> IdentityUpdate:
        """Link this frame's observations to tracks and advance every track's life cycle.

        Args:
            frame_index: Index of the frame (increasing).
            tracked: Propagation's view of live tracks in this frame (any subset of them).
            observations: What was newly seen in this frame, each with its prototype (or None).
            image_size: (height, width) of the frame: a lost track whose predicted box is less
                than ``coast_min_inside`` inside it has walked out, and box-only detections do
                not bring it back; with ``end_outside`` an unmatched detection-driven track whose
                prediction has walked out ends (None: no such test).

        Returns:
            The decisions for this frame.
        """
        cfg = self.config
        update = IdentityUpdate()
        props = {t.track_id: t for t in tracked if t.track_id in self._tracks}
        observations = [dataclasses.replace(o, prototype=unit(o.prototype)) for o in observations]

        # Observations drive a track's motion model; once it has not been observed for longer
        # than the prediction horizon, propagation moves it (as it does prompt-only tracks).
        for tid, obj in props.items():
            ident = self._tracks[tid]
            seen = obj.box is not None and obj.score >= cfg.lifecycle.lost_score
            stale = frame_index - ident.observed > cfg.motion.max_predict_frames
            if ident.state != TrackState.LOST and seen and stale:
                motion.move(ident, obj.box, frame_index, cfg.motion)

        # A lost track's own verifier found it (`reid.redetect_lost`): that very track comes back.
        verified = [
            (i, o.for_track)
            for i, o in enumerate(observations)
            if o.for_track is not None and self.state(o.for_track) == TrackState.LOST
        ]
        candidates = [
            i for i, o in enumerate(observations) if o.origin != "prompt" and o.for_track is None
        ]
        pairs = verified + self._assign(frame_index, candidates, observations, props, image_size)
        for oi, tid in pairs:
            ident = self._tracks[tid]
            if ident.state == TrackState.LOST:
                ident.state = TrackState.ACTIVE
                ident.lost_since = None
                update.recovered[oi] = tid
                self._emit("track.recovered", frame_index, ident)
            else:
                update.matched[oi] = tid
            self._observe(ident, observations[oi], frame_index)
            if ident.state == TrackState.TENTATIVE and ident.hits >= cfg.lifecycle.confirm_frames:
                ident.state = TrackState.ACTIVE
                self._emit("track.started", frame_index, ident)

        matched_ids = {tid for _, tid in pairs}
        detected = any(observations[i].origin == "detection" for i in candidates)
        self._age(frame_index, props, matched_ids, detected, update, image_size)
        if detected:
            self._detections_frame = frame_index
            by_detection = {tid for oi, tid in pairs if observations[oi].origin == "detection"}
            for tid, ident in self._tracks.items():
                if tid in by_detection:
                    ident.detected, ident.detection_misses = frame_index, 0
                elif ident.detected is not None:
                    ident.detection_misses += 1

        self._births(frame_index, observations, {oi for oi, _ in pairs}, props, update)
        self.last_update = update
        return update

    def remove(self, track_id: int, frame_index: int | None = None) -> bool:
        """End a live track now (a "track.ended" event with message "removed"); its id is not
        reused. Returns False when the track had already ended.

        Raises:
            KeyError: the id was never given out.
        """
        if self.state(track_id) == TrackState.ENDED:
            return False
        ident = self._tracks.pop(track_id)
        ident.state = TrackState.ENDED
        self._emit("track.ended", frame_index, ident, message="removed")
        return True

    def _assign(
        self,
        frame_index: int,
        candidates: list[int],
        observations: list[Observation],
        props: dict[int, TrackedObject],
        image_size: tuple[int, int] | None,
    ) -> list[tuple[int, int]]:
        """One Hungarian assignment of observations to tentative, active and lost tracks."""
        idents = list(self._tracks.values())
        if not candidates or not idents:
            return []
        score = np.full((len(candidates), len(idents)), -1.0)
        for j, ident in enumerate(idents):
            lost = ident.state == TrackState.LOST
            view = track_view(
                ident, None if lost else props.get(ident.track_id), frame_index, self.config
            )
            for r, oi in enumerate(candidates):
                obs = observations[oi]
                if lost:
                    s = lost_pair_score(ident, view, obs, frame_index, image_size, self.config)
                else:
                    s = pair_score(ident, view, obs, self.config)
                if s is not None:
                    score[r, j] = s
        return [(candidates[r], idents[c].track_id) for r, c in assign(score)]

    def _age(
        self,
        frame_index: int,
        props: dict[int, TrackedObject],
        matched_ids: set[int],
        had_observations: bool,
        update: IdentityUpdate,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        """Advance unmatched tracks: drop stale tentatives, lose faded actives, end old lost and
        those that walked out of the image."""
        cfg = self.config.lifecycle
        for tid in list(self._tracks):
            ident = self._tracks[tid]
            if tid in matched_ids:
                continue
            if motion.left_image(ident, frame_index, image_size, self.config.motion):
                self._end(ident, frame_index, update, message="left the image")
                continue
            if ident.state == TrackState.TENTATIVE:
                ident.misses += 1
                if ident.misses > cfg.tentative_max_misses:
                    del self._tracks[tid]
                    update.ended.append(tid)
            elif ident.state == TrackState.ACTIVE:
                if ident.born == frame_index:
                    continue  # born by an earlier call for this same frame
                prop = props.get(tid)
                faded = prop is None or prop.box is None or prop.score < cfg.lost_score
                if had_observations:
                    ident.unmatched += 1
                limit = cfg.max_unmatched_frames
                if faded or (limit is not None and ident.unmatched > limit):
                    ident.state = TrackState.LOST
                    ident.lost_since = frame_index
                    update.lost.append(tid)
                    self._emit("track.lost", frame_index, ident)
            elif ident.state == TrackState.LOST:
                lost_since = frame_index if ident.lost_since is None else ident.lost_since
                if frame_index - lost_since >= cfg.lost_timeout_frames:
                    self._end(ident, frame_index, update)

    def _births(
        self,
        frame_index: int,
        observations: list[Observation],
        assigned: set[int],
        props: dict[int, TrackedObject],
        update: IdentityUpdate,
    ) -> None:
        """Prompts always start a track; other unmatched observations unless they duplicate a live
        track (re-detections never do)."""
        cfg = self.config.lifecycle
        live_boxes = [
            t.box
            for t in self._tracks.values()
            if t.state != TrackState.LOST and t.last_seen == frame_index
        ] + [
            p.box
            for p in props.values()
            if p.box is not None
            and p.score >= cfg.lost_score
            and self.state(p.track_id) in (TrackState.TENTATIVE, TrackState.ACTIVE)
        ]
        for oi, obs in enumerate(observations):
            if oi in assigned or obs.origin == "redetection":
                continue
            if obs.origin != "prompt" and live_boxes:
                overlap = box_iou(np.array([obs.box]), np.array(live_boxes)).max()
                if overlap >= cfg.duplicate_iou:
                    continue
            ident = self._birth(obs, frame_index)
            if obs.origin != "prompt":
                ident.detected = frame_index
            update.born[oi] = ident.track_id
            live_boxes.append(ident.box)

    # ----------------------------------------------------------------------------------------
    # book-keeping

    def _birth(self, obs: Observation, frame_index: int) -> Identity:
        prompted = obs.origin == "prompt" or self.config.lifecycle.confirm_frames <= 1
        ident = Identity(
            track_id=self._next_id,
            state=TrackState.ACTIVE if prompted else TrackState.TENTATIVE,
            label=obs.label,
            box=tuple(float(v) for v in obs.box),
            last_seen=frame_index,
            observed=frame_index,
            born=frame_index,
            prototype=obs.prototype,
            gallery=deque(maxlen=self.config.reid.gallery_size),
        )
        self._next_id += 1
        if obs.prototype is not None:
            ident.gallery.append(obs.prototype)
            ident.gallery_frame = frame_index
        self._tracks[ident.track_id] = ident
        if ident.state == TrackState.ACTIVE:
            self._emit("track.started", frame_index, ident)
        return ident

    def _observe(self, ident: Identity, obs: Observation, frame_index: int) -> None:
        cfg = self.config.association
        motion.move(ident, obs.box, frame_index, self.config.motion)
        h_obs = float(obs.box[3] - obs.box[1])
        if ident.height <= 0:
            ident.height = h_obs
        elif h_obs > 0:
            ident.height = cfg.height_momentum * ident.height + (1 - cfg.height_momentum) * h_obs
        ident.observed = frame_index
        ident.hits += 1
        ident.misses = 0
        ident.unmatched = 0
        if ident.label is None:
            ident.label = obs.label
        proto = obs.prototype
        if proto is None:
            return
        if ident.prototype is None or ident.prototype.shape != proto.shape:
            ident.prototype = proto
        else:
            mixed = cfg.prototype_momentum * ident.prototype + (1 - cfg.prototype_momentum) * proto
            ident.prototype = unit(mixed)
        add_to_gallery(ident, proto, frame_index, self.config.reid)

    def _end(
        self, ident: Identity, frame_index: int, update: IdentityUpdate, message: str | None = None
    ) -> None:
        ident.state = TrackState.ENDED
        del self._tracks[ident.track_id]
        update.ended.append(ident.track_id)
        self._emit("track.ended", frame_index, ident, message=message)

    def _emit(
        self, kind: str, frame_index: int | None, ident: Identity, message: str | None = None
    ) -> None:
        self._events.append(
            Event(
                kind=kind,
                source_id=self.source_id,
                wall_time=time.time(),
                frame_index=frame_index,
                track_id=ident.track_id,
                message=message,
                extra={"label": ident.label},
            )
        )

    # ----------------------------------------------------------------------------------------
    # checkpoints

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable snapshot (pending events are not included)."""
        return {
            "next_id": self._next_id,
            "detections_frame": self._detections_frame,
            "tracks": [t.to_json() for t in self._tracks.values()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a snapshot made by `state_dict` (replaces every track)."""
        self._next_id = int(state["next_id"])
        self._detections_frame = state.get("detections_frame")
        self._tracks = {}
        for d in state["tracks"]:
            ident = Identity.from_json(d, self.config.reid.gallery_size)
            self._tracks[ident.track_id] = ident
