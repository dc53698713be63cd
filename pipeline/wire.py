"""The Redis wire format: the one place that turns results and events into stream entries and back.

Contract (see docs/protocol.md): every stream entry has the fields ``schema`` (a version string) and
``data`` (JSON). Fields may be added in later versions; the names below are never renamed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.limits import MAX_JOB_BYTES, LimitError, load_json
from pipeline.redact import redact
from pipeline.types import Event, FrameResult, Track, TrackState

SCHEMA_VERSION = "1.0"
PREFIX = "dinotrack"
JOBS_STREAM = f"{PREFIX}:jobs"
ON_EXISTING = (None, "fresh", "resume")


def frames_key(source_id: str) -> str:
    return f"{PREFIX}:{source_id}:frames"


def events_key(source_id: str) -> str:
    return f"{PREFIX}:{source_id}:events"


def state_key(source_id: str) -> str:
    return f"{PREFIX}:{source_id}:state"


def control_key(source_id: str) -> str:
    return f"{PREFIX}:{source_id}:control"


def checkpoint_key(source_id: str) -> str:
    return f"{PREFIX}:{source_id}:checkpoint"


def source_keys(source_id: str) -> list[str]:
    """Every key of one source: frames, events, state, control and checkpoint."""
    keys = (frames_key, events_key, state_key, control_key, checkpoint_key)
    return [key(source_id) for key in keys]


#: Matches (``SCAN MATCH``) the state key of every source.
STATE_KEYS = state_key("*")


def source_id_of_state_key(key: str | bytes) -> str:
    """The source id in a state key (``dinotrack:<source-id>:state``)."""
    text = key.decode() if isinstance(key, bytes) else key
    return text.removeprefix(f"{PREFIX}:").removesuffix(":state")


class WireError(ValueError):
    """A stream entry that does not follow the protocol."""


def _round(v: float, nd: int = 2) -> float:
    return float(round(float(v), nd))


def track_to_dict(track: Track) -> dict[str, Any]:
    return {
        "id": int(track.id),
        "label": track.label,
        "state": track.state.value,
        "score": _round(track.score, 4),
        "box": None if track.box is None else [_round(v) for v in track.box],
        "mask": track.mask,
    }


def track_from_dict(d: dict[str, Any]) -> Track:
    box = d.get("box")
    return Track(
        id=int(d["id"]),
        label=d.get("label"),
        state=TrackState(d["state"]),
        score=float(d["score"]),
        box=None if box is None else tuple(float(v) for v in box),
        mask=d.get("mask"),
    )


def frame_result_to_dict(result: FrameResult) -> dict[str, Any]:
    return {
        "source_id": result.source_id,
        "frame_index": int(result.frame_index),
        "pts": float(result.pts),
        "wall_time": float(result.wall_time),
        "width": int(result.width),
        "height": int(result.height),
        "backbone": result.backbone,
        "tracks": [track_to_dict(t) for t in result.tracks],
    }


def frame_result_from_dict(d: dict[str, Any]) -> FrameResult:
    return FrameResult(
        source_id=d["source_id"],
        frame_index=int(d["frame_index"]),
        pts=float(d["pts"]),
        wall_time=float(d["wall_time"]),
        width=int(d["width"]),
        height=int(d["height"]),
        backbone=d["backbone"],
        tracks=[track_from_dict(t) for t in d.get("tracks", [])],
    )


def encode_frame_result(result: FrameResult) -> dict[str, str]:
    """Stream-entry fields for one frame result."""
    return {"schema": SCHEMA_VERSION, "data": json.dumps(frame_result_to_dict(result))}


def _fields_json(fields: dict, max_bytes: int | None = None) -> dict[str, Any]:
    def s(v: Any) -> str:
        return v.decode(errors="replace") if isinstance(v, bytes) else str(v)

    norm = {s(k): s(v) for k, v in fields.items()}
    if "schema" not in norm or "data" not in norm:
        raise WireError(f"entry lacks 'schema' or 'data' fields: {sorted(norm)}")
    major = norm["schema"].split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise WireError(
            f"entry has schema {norm['schema']!r}; this reader understands {SCHEMA_VERSION}"
        )
    try:
        if max_bytes is None:
            return json.loads(norm["data"])
        return load_json(norm["data"].encode(), "entry 'data'", max_bytes)
    except LimitError as exc:
        raise WireError(str(exc)) from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise WireError(f"entry 'data' is not JSON (or nested too deep): {exc}") from exc


def decode_frame_result(fields: dict) -> FrameResult:
    """Inverse of `encode_frame_result`; accepts str or bytes keys and values."""
    return frame_result_from_dict(_fields_json(fields))


def encode_event(event: Event) -> dict[str, str]:
    d = {
        "kind": event.kind,
        "source_id": event.source_id,
        "wall_time": float(event.wall_time),
        "frame_index": event.frame_index,
        "track_id": event.track_id,
        "message": None if event.message is None else redact(event.message),
        **event.extra,
    }
    return {"schema": SCHEMA_VERSION, "data": json.dumps(d)}


def decode_event(fields: dict) -> Event:
    d = _fields_json(fields)
    known = {"kind", "source_id", "wall_time", "frame_index", "track_id", "message"}
    return Event(
        kind=d["kind"],
        source_id=d["source_id"],
        wall_time=float(d["wall_time"]),
        frame_index=d.get("frame_index"),
        track_id=d.get("track_id"),
        message=d.get("message"),
        extra={k: v for k, v in d.items() if k not in known},
    )


@dataclass
class Job:
    """A request to process one source (an entry of ``dinotrack:jobs``).

    ``settings`` holds nested overrides of the worker's settings for this job only (the same
    shape as the settings file, e.g. ``{"backbone": {"name": "dinov2-small"}}``).
    """

    source: str
    source_id: str
    prompts: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    job_id: str = ""
    submitted: float = 0.0
    on_existing: str | None = None
    """What to do when the source id already has results: "fresh", "resume", or None (refuse)."""


def encode_job(job: Job) -> dict[str, str]:
    d = {
        "job_id": job.job_id,
        "source": job.source,
        "source_id": job.source_id,
        "prompts": job.prompts,
        "settings": job.settings,
        "submitted": job.submitted,
        "on_existing": job.on_existing,
    }
    return {"schema": SCHEMA_VERSION, "data": json.dumps(d)}


JOB_FIELDS = ("job_id", "source", "source_id", "prompts", "settings", "submitted", "on_existing")


def job_source_id(fields: dict) -> str | None:
    """The source id a (possibly malformed) job entry names, if it names one as a string."""
    try:
        d = _fields_json(fields)
    except WireError:
        return None
    sid = d.get("source_id") if isinstance(d, dict) else None
    return sid if isinstance(sid, str) and sid else None


def decode_job(fields: dict) -> Job:
    """A job from its entry; raises WireError naming what is missing or malformed.

    Every way a job can be wrong (not JSON, not an object, a missing or empty ``source`` or
    ``source_id``, a field of the wrong type, an unknown field) is a WireError, so a worker can
    drop the job with one handler.
    """
    d = _fields_json(fields, max_bytes=MAX_JOB_BYTES)
    if not isinstance(d, dict):
        raise WireError("job 'data' must be a JSON object")
    unknown = sorted(set(d) - set(JOB_FIELDS))
    if unknown:
        known = ", ".join(JOB_FIELDS)
        raise WireError(f"job has unknown field(s) {', '.join(unknown)}; known: {known}")
    missing = [k for k in ("source", "source_id") if not d.get(k)]
    if missing:
        raise WireError(f"job lacks {', '.join(missing)} — submit with a source and --source-id")
    expected = {"source": str, "source_id": str, "job_id": str, "prompts": list, "settings": dict}
    for name, kind in expected.items():
        if name in d and not isinstance(d[name], kind):
            raise WireError(f"job field '{name}' must be a {kind.__name__}, got {d[name]!r:.60}")
    submitted = d.get("submitted", 0.0)
    if isinstance(submitted, bool) or not isinstance(submitted, (int, float)):
        raise WireError(f"job field 'submitted' must be a Unix time number, got {submitted!r:.60}")
    if d.get("on_existing") not in ON_EXISTING:
        raise WireError(f"job 'on_existing' must be one of {ON_EXISTING}, not {d['on_existing']!r}")
    return Job(
        source=d["source"],
        source_id=d["source_id"],
        prompts=list(d.get("prompts", [])),
        settings=dict(d.get("settings", {})),
        job_id=d.get("job_id", ""),
        submitted=float(submitted),
        on_existing=d.get("on_existing"),
    )


STATE_INT_FIELDS = ("frames_done", "total", "last_frame", "lag", "dropped", "restarts")
STATE_FLOAT_FIELDS = ("fps",)


def decode_state(raw: dict) -> dict[str, Any]:
    """A source's state hash with typed values: counts as int, ``fps`` as float, "" as None."""
    doc: dict[str, Any] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else str(k)
        value = v.decode(errors="replace") if isinstance(v, bytes) else str(v)
        try:
            if value == "":
                doc[name] = None
            elif name in STATE_INT_FIELDS:
                doc[name] = int(float(value))
            elif name in STATE_FLOAT_FIELDS:
                doc[name] = float(value)
            else:
                doc[name] = value
        except ValueError:
            doc[name] = value
    return doc


CONTROL_OPS = ("stop", "add_prompts", "remove_track")


def encode_control(op: str, **payload: Any) -> dict[str, str]:
    """A control message: ``stop``, ``add_prompts`` (prompts=[...]), ``remove_track`` (track_id)."""
    if op not in CONTROL_OPS:
        raise WireError(f"unknown control op {op!r}; use one of {', '.join(CONTROL_OPS)}")
    return {"schema": SCHEMA_VERSION, "data": json.dumps({"op": op, **payload})}


def decode_control(fields: dict) -> dict[str, Any]:
    d = _fields_json(fields)
    if not isinstance(d, dict) or d.get("op") not in CONTROL_OPS:
        raise WireError(f"control message must have op in {CONTROL_OPS}, got {d!r}")
    return d
