"""Tracker checkpoints kept in Redis (``dinotrack:<source-id>:checkpoint``), without pickle.

A checkpoint is a nested structure of dicts, lists, scalars, strings and numpy arrays. Arrays go
into an ``.npz`` archive (loaded with ``allow_pickle=False``), everything else into JSON that refers
to them by name; so a checkpoint read back from Redis cannot execute code.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import redis

from pipeline.wire import checkpoint_key

_ARRAY = "__ndarray__"


def pack(state: Any) -> bytes:
    """Serialise a nested structure with numpy arrays to bytes."""
    arrays: dict[str, np.ndarray] = {}

    def walk(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            name = f"a{len(arrays)}"
            arrays[name] = obj
            return {_ARRAY: name}
        if isinstance(obj, dict):
            return {str(k): walk(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [walk(v) for v in obj]
        if isinstance(obj, np.generic):
            return obj.item()
        return obj

    doc = json.dumps(walk(state)).encode()
    buf = io.BytesIO()
    np.savez(buf, __doc__=np.frombuffer(doc, dtype=np.uint8), **arrays)
    return buf.getvalue()


def unpack(blob: bytes) -> Any:
    """Inverse of `pack`."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    doc = json.loads(arrays.pop("__doc__").tobytes().decode())

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            if set(obj) == {_ARRAY}:
                return arrays[obj[_ARRAY]]
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(doc)


def save_checkpoint(client: redis.Redis, source_id: str, frame_index: int, state: Any) -> None:
    """Store the tracker state reached after ``frame_index``."""
    client.hset(
        checkpoint_key(source_id), mapping={"frame_index": frame_index, "state": pack(state)}
    )


def load_checkpoint(client: redis.Redis, source_id: str) -> tuple[int, Any] | None:
    """(frame_index, state) of the last checkpoint, or None."""
    d = client.hgetall(checkpoint_key(source_id))
    if not d:
        return None
    return int(d[b"frame_index"]), unpack(d[b"state"])


def clear_checkpoint(client: redis.Redis, source_id: str) -> None:
    client.delete(checkpoint_key(source_id))
