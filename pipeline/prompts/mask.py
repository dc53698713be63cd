"""Mask prompts: a label image (palette PNG, 0/255 PNG or RLE) whose every id is one object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.limits import LimitError, check_mask_size
from pipeline.masks import mask_to_box, rle_decode, rle_encode
from pipeline.prompts.base import Prompt, check_keys, read_common, resolve_path
from pipeline.prompts.errors import PromptError
from pipeline.prompts.plan import PromptFrame
from pipeline.types import Observation


def load_label_png(path: Path, kind: str = "mask") -> np.ndarray:
    """Read a mask image into an (H, W) uint16 id map (0 = background).

    * palette ("P") PNG: the pixel value is the object id (DAVIS / YouTube-VOS convention);
    * grey PNG whose values are 0 and 255 (or a 1-bit PNG): one object, id 1;
    * grey PNG with other values: each value is an id;
    * colour PNG: each distinct non-black colour is an object, ids 1.. in sorted colour order.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            check_mask_size(im.height, im.width)  # from the header, before decoding
            im.load()
            mode = im.mode
            if mode == "P":
                return np.asarray(im, dtype=np.uint16)
            if mode in ("RGB", "RGBA"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint32)
                code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
                colours, inverse = np.unique(code, return_inverse=True)
                ids = np.arange(len(colours), dtype=np.uint16) + (0 if colours[0] == 0 else 1)
                return ids[inverse.reshape(code.shape)]
            arr = np.asarray(im.convert("I") if mode not in ("1", "L") else im)
    except (LimitError, Image.DecompressionBombError) as exc:
        raise PromptError(f"{path}: {exc}", "give a mask of the frame's own size", kind=kind,
                          value=repr(str(path))) from exc  # fmt: skip
    except OSError as exc:
        raise PromptError(
            f"cannot read {path} as an image ({exc})",
            "give a PNG mask (palette ids, or 0/255 for one object)",
            kind=kind,
            value=repr(str(path)),
        ) from exc
    if arr.dtype == bool:
        return arr.astype(np.uint16)
    values = np.unique(arr)
    if set(values.tolist()) <= {0, 255}:
        return (arr > 0).astype(np.uint16)
    if values.min() < 0 or values.max() > np.iinfo(np.uint16).max:
        raise PromptError(
            f"{path} holds values outside 0..65535",
            "give a palette PNG whose values are object ids",
            kind=kind,
            value=repr(str(path)),
        )
    return arr.astype(np.uint16)


@dataclass(kw_only=True, eq=False)
class MaskPrompt(Prompt):
    """Objects given by their masks: every non-zero id of ``id_map`` (or those in ``ids``) is one
    object; they need no segmenter.

    The image is read when the prompt is parsed (so validation can check its size and emptiness);
    `to_json` writes one RLE per kept id, so the prompt travels without the file.

    Attributes:
        id_map: (H, W) uint16 object ids, 0 = background.
        ids: Ids to keep (default None: every non-zero id).
        path: The file it was read from, if any (informative only).
    """

    kind: ClassVar[str] = "mask"
    keys: ClassVar[frozenset[str]] = frozenset({"path", "rle", "ids", "size"})

    id_map: np.ndarray
    ids: list[int] | None = None
    path: str | None = None

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        ids: list[int] | None = None,
        frame: int = 0,
        label: str | None = None,
    ) -> MaskPrompt:
        """Read a mask PNG (see `load_label_png`)."""
        resolved = resolve_path(str(path), None, cls.kind)
        return cls(
            id_map=load_label_png(resolved), ids=ids, path=str(resolved), frame=frame, label=label
        )

    def object_ids(self) -> list[int]:
        """The ids that become objects, ascending (observations come in this order)."""
        present = [int(v) for v in np.unique(self.id_map) if v != 0]
        if self.ids is None:
            return present
        return [i for i in sorted(set(self.ids)) if i in present]

    def object_masks(self) -> dict[int, np.ndarray]:
        """``{id: (H, W) bool mask}`` for every kept id."""
        return {i: self.id_map == i for i in self.object_ids()}

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the mask."""
        return int(self.id_map.shape[0]), int(self.id_map.shape[1])

    def _fields_to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rle": {str(i): rle_encode(m) for i, m in self.object_masks().items()},
            "size": list(self.size),
        }
        if self.ids is not None:
            out["ids"] = list(self.ids)
        if self.path is not None:
            out["path"] = self.path
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], base_dir: Path | None = None) -> MaskPrompt:
        check_keys(cls.kind, obj, cls.keys)
        common = read_common(cls.kind, obj)
        ids = obj.get("ids")
        if ids is not None and (
            not isinstance(ids, list)
            or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
        ):
            raise PromptError(
                f"ids {ids!r} are not positive integers",
                'give "ids": [1, 3] (palette ids to keep) or leave it out to keep all',
                kind=cls.kind,
            )
        path = obj.get("path")
        if "rle" in obj:
            id_map = _id_map_from_rle(obj["rle"], obj.get("size"))
            return cls(
                id_map=id_map, ids=ids, path=path if isinstance(path, str) else None, **common
            )
        if path is None:
            raise PromptError(
                "neither 'path' nor 'rle' given",
                'add "path": "mask.png" or "rle": {"size": [h, w], "counts": ...}',
                kind=cls.kind,
            )
        resolved = resolve_path(path, base_dir, cls.kind)
        return cls(id_map=load_label_png(resolved), ids=ids, path=str(resolved), **common)

    def check(self, width: int, height: int) -> None:
        if self.id_map.ndim != 2:
            raise self.error(f"mask has shape {self.id_map.shape}", "give a 2-D mask image")
        h, w = self.size
        if (w, h) != (width, height):
            raise self.error(
                f"mask size {w}x{h} differs from the frame size {width}x{height}",
                f"give a mask of {width}x{height} pixels (the video's own size)",
            )
        present = {int(v) for v in np.unique(self.id_map) if v != 0}
        if not present:
            raise self.error("empty mask (every pixel is 0)", "mark the object with non-zero ids")
        if self.ids is not None:
            missing = sorted(set(self.ids) - present)
            if missing:
                raise self.error(
                    f"ids {missing} are not in the mask (it holds {sorted(present)})",
                    "keep only ids that the mask holds",
                )

    def describe(self) -> str:
        if self.path:
            return repr(Path(self.path).name)
        h, w = self.size
        return f"<{w}x{h} rle>"

    def plan(self, frame: PromptFrame, first: bool) -> list[Observation]:
        """An observation per kept id, by ascending id (no segmenter)."""
        return [
            Observation(box=mask_to_box(m), mask=m, score=1.0, label=self.label, origin="prompt")
            for m in self.object_masks().values()
        ]


def _id_map_from_rle(rle: Any, size: Any) -> np.ndarray:
    """An id map from one RLE (id 1) or ``{"<id>": rle, ...}``."""
    fix = 'give "rle": {"size": [h, w], "counts": ...} or {"<id>": {"size": ..., "counts": ...}}'
    if not isinstance(rle, dict):
        raise PromptError(f"rle {rle!r:.60} is not an object", fix, kind="mask")
    per_id = {"1": rle} if "counts" in rle else rle
    if not per_id:
        if not (isinstance(size, list) and len(size) == 2):
            raise PromptError("rle holds no object and no size", fix, kind="mask")
        try:
            check_mask_size(int(size[0]), int(size[1]))
        except (LimitError, TypeError, ValueError) as exc:
            raise PromptError(f"rle size {size!r:.60}: {exc}", fix, kind="mask") from exc
        return np.zeros((int(size[0]), int(size[1])), dtype=np.uint16)
    id_map: np.ndarray | None = None
    for key, one in per_id.items():
        if not str(key).isdigit() or int(key) <= 0:
            raise PromptError(f"rle key {key!r} is not a positive object id", fix, kind="mask")
        try:  # the declared size is checked before anything is decoded
            h, w = (int(v) for v in one["size"])
            check_mask_size(h, w)
        except LimitError as exc:
            raise PromptError(f"rle of id {key}: {exc}", fix, kind="mask") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise PromptError(
                f"rle of id {key} has no size [h, w] ({exc})", fix, kind="mask"
            ) from exc
        try:
            m = rle_decode(one)
        except (KeyError, TypeError, ValueError) as exc:
            raise PromptError(
                f"rle of id {key} cannot be decoded ({exc})", fix, kind="mask"
            ) from exc
        if id_map is None:
            id_map = np.zeros(m.shape, dtype=np.uint16)
        if m.shape != id_map.shape:
            raise PromptError(
                f"rle of id {key} has size {m.shape}, others {id_map.shape}", fix, kind="mask"
            )
        id_map[m] = int(key)
    assert id_map is not None
    return id_map
