"""Exemplar prompts ("enrolment"): a reference image and a region whose patch-feature prototype is
matched by cosine similarity in new frames; the matches become box prompts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.confine import active
from pipeline.masks import box_to_mask, rle_decode, rle_encode
from pipeline.models.base import Backbone
from pipeline.prompts.base import (
    Box,
    RedetectingPrompt,
    box_problem,
    check_keys,
    fmt_num,
    read_box,
    read_common,
    read_int,
    read_number,
    resolve_path,
)
from pipeline.prompts.errors import PromptError
from pipeline.prompts.mask import load_label_png
from pipeline.prompts.plan import MaskAsk, PromptFrame
from pipeline.types import FeatureMap

#: Grid cells are upsampled by this factor before thresholding (match boxes finer than a cell).
UPSAMPLE = 4
#: Gaussian smoothing (sigma, in grid cells) of the similarity maps before regions are cut.
SMOOTH_CELLS = 1.0


def _normalise(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _kmeans(x: np.ndarray, k: int, iters: int = 10) -> np.ndarray:
    """k spherical-k-means centroids (L2-normalised) of the rows of ``x``; deterministic."""
    k = min(k, len(x))
    if k <= 0:
        return np.zeros((0, x.shape[1]), np.float32)
    # farthest-point initialisation from the row closest to the mean
    centres = [int(np.argmax(x @ _normalise(x.mean(0))))]
    for _ in range(1, k):
        sim = (x @ x[centres].T).max(axis=1)
        centres.append(int(np.argmin(sim)))
    c = x[centres].copy()
    for _ in range(iters):
        assign = np.argmax(x @ c.T, axis=1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = _normalise(members.mean(0))
    return c.astype(np.float32)


def cell_coverage(region: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """Fraction of each grid cell covered by an (H, W) bool region, as (h, w) float32."""
    import cv2  # here, not at import: the CLI parses prompts without OpenCV

    h, w = grid_shape
    return cv2.resize(region.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)


@dataclass(eq=False)
class Exemplar:
    """A patch-feature prototype of an object, matched in new frames.

    Attributes:
        prototype: (C,) L2-normalised mean of the patch features inside the reference region.
        backbone: Name of the backbone the features came from (matching needs the same one).
        parts: (K, C) L2-normalised part prototypes (k-means of the region's features; K may be 0).
        background: (B, C) L2-normalised prototypes of the reference image outside the region; a
            cell matches only where it is closer to the object than to every background prototype.
        name: What messages call it (usually the reference file name).
    """

    prototype: np.ndarray
    backbone: str
    parts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    background: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    name: str = "exemplar"

    @classmethod
    def from_reference(
        cls,
        image: np.ndarray,
        box_or_mask: Box | np.ndarray,
        backbone: Backbone,
        parts: int = 0,
        background: int = 4,
        name: str = "exemplar",
    ) -> Exemplar:
        """Enrol an object from a reference image.

        Args:
            image: HxWx3 uint8 RGB reference image.
            box_or_mask: (x0, y0, x1, y1) pixels, or an (H, W) bool mask, of the object.
            backbone: Gives the patch features (any `Backbone`).
            parts: Number of part prototypes to keep besides the mean (default 0).
            background: Number of background prototypes (default 4; 0 = none).
            name: What messages call it.
        """
        h, w = image.shape[:2]
        if isinstance(box_or_mask, np.ndarray) and box_or_mask.ndim == 2:
            if box_or_mask.shape != (h, w):
                raise PromptError(
                    f"mask size {box_or_mask.shape[1]}x{box_or_mask.shape[0]} differs from the "
                    f"reference image size {w}x{h}",
                    "give a mask of the reference image's size",
                    kind="exemplar",
                    value=repr(name),
                )
            region = box_or_mask.astype(bool)
        else:
            region = box_to_mask(tuple(float(v) for v in box_or_mask), h, w)
        if not region.any():
            raise PromptError(
                "the reference region is empty",
                "give a box or mask that covers the object in the reference image",
                kind="exemplar",
                value=repr(name),
            )
        fm = backbone.features([image])[0]
        cover = cell_coverage(region, fm.shape)
        inside = cover >= 0.5
        if not inside.any():  # an object smaller than a cell: take the cells it touches most
            inside = cover >= cover.max()
        feats = fm.grid[inside].astype(np.float32)
        outside = fm.grid[cover <= 0.0].astype(np.float32)
        return cls(
            prototype=_normalise(feats.mean(0)),
            backbone=fm.backbone,
            parts=_kmeans(feats, parts),
            background=_kmeans(outside, background),
            name=name,
        )

    def similarity(self, features: FeatureMap) -> np.ndarray:
        """(h, w) cosine similarity of each cell to the object (its best prototype)."""
        if features.backbone != self.backbone:
            raise PromptError(
                f"enrolled with backbone {self.backbone!r} but the frames come from "
                f"{features.backbone!r}",
                "enrol the exemplar again with the backbone that processes the video",
                kind="exemplar",
                value=repr(self.name),
            )
        grid = features.grid.astype(np.float32)
        sim = grid @ self.prototype
        if self.parts.size:
            sim = np.maximum(sim, (grid @ self.parts.T).max(axis=-1))
        return sim.astype(np.float32)

    def candidates(self, features: FeatureMap) -> list[tuple[Box, float]]:
        """Every region that looks more like the object than like the reference's background, with
        its peak similarity, best first (no threshold).

        Similarity and background-similarity maps are smoothed (Gaussian, sigma one cell), the
        cells where the object wins form regions (8-connected, after bilinear upsampling so boxes
        are finer than a cell); each region's box is in original-frame pixels and its score is the
        unsmoothed similarity peak inside it. Without background prototypes a region is where the
        smoothed similarity is at least half the frame's best.
        """
        import cv2
        from scipy import ndimage

        sim = self.similarity(features)
        smooth = cv2.GaussianBlur(sim, (0, 0), SMOOTH_CELLS)
        if self.background.size:
            bg = (features.grid.astype(np.float32) @ self.background.T).max(axis=-1)
            margin = smooth - cv2.GaussianBlur(bg.astype(np.float32), (0, 0), SMOOTH_CELLS)
        else:
            margin = smooth - 0.5 * float(sim.max())
        h, w = sim.shape
        size = (w * UPSAMPLE, h * UPSAMPLE)
        region = cv2.resize(margin, size, interpolation=cv2.INTER_LINEAR) > 0
        labels, n = ndimage.label(region, structure=np.ones((3, 3), bool))
        if n == 0:
            return []
        up = cv2.resize(sim, size, interpolation=cv2.INTER_LINEAR)
        peaks = ndimage.maximum(up, labels, index=np.arange(1, n + 1))
        img_h, img_w = features.image_size
        sx, sy = img_w / size[0], img_h / size[1]
        found: list[tuple[Box, float]] = []
        for peak, (ys, xs) in zip(peaks, ndimage.find_objects(labels), strict=True):
            box = (xs.start * sx, ys.start * sy, xs.stop * sx, ys.stop * sy)
            found.append((tuple(float(v) for v in box), float(peak)))
        found.sort(key=lambda m: -m[1])
        return found

    def best_similarity(self, features: FeatureMap) -> float:
        """The best score `match` could give in this frame (for "matched nothing" messages)."""
        found = self.candidates(features)
        return found[0][1] if found else float(self.similarity(features).max())

    def match(
        self, features: FeatureMap, threshold: float, max_matches: int | None = None
    ) -> list[tuple[Box, float]]:
        """Boxes (original-frame pixels) and scores of the regions that look like the exemplar,
        best first: the `candidates` whose peak cosine similarity is at least ``threshold``."""
        found = [m for m in self.candidates(features) if m[1] >= threshold]
        return found[:max_matches] if max_matches else found

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (floats written exactly) that `from_json` turns back."""
        return {
            "backbone": self.backbone,
            "name": self.name,
            "vector": [float(v) for v in self.prototype],
            "parts": [[float(v) for v in row] for row in self.parts],
            "background": [[float(v) for v in row] for row in self.background],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Exemplar:
        """Inverse of `to_json`."""
        try:
            vector = np.asarray(obj["vector"], dtype=np.float32)
            dim = vector.shape[0]
            parts = np.asarray(obj.get("parts", []), dtype=np.float32).reshape(-1, dim)
            background = np.asarray(obj.get("background", []), dtype=np.float32).reshape(-1, dim)
            return cls(
                prototype=vector,
                backbone=str(obj["backbone"]),
                parts=parts,
                background=background,
                name=str(obj.get("name", "exemplar")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PromptError(
                f"prototype cannot be read ({exc})",
                'give "prototype": {"backbone": ..., "vector": [...]} as written by to_json',
                kind="exemplar",
            ) from exc


@dataclass(kw_only=True, eq=False)
class ExemplarPrompt(RedetectingPrompt):
    """Objects that look like a reference: the region (box or mask) of a reference image is
    enrolled as an `Exemplar`, and its matches in the prompt's frame become box prompts.

    Attributes:
        image: Path of the reference image (None when the prototype travels instead).
        box: (x0, y0, x1, y1) of the object in the reference image, or None when ``mask`` is given.
        mask: (H, W) bool mask of the object in the reference image, or None when ``box`` is given.
        threshold: Least cosine similarity of a match (default 0.5).
        max_matches: Most objects made from the matches of one frame (default 1: the best match).
        redetect_every: Match again every N frames after the first as re-detections that the
            tracker may link (default 0: only at ``frame``).
        exemplar: The enrolled prototype (set by `enroll`, or read from JSON "prototype").
        reference_size: (height, width) of the reference image, read when the prompt is parsed.
    """

    kind: ClassVar[str] = "exemplar"
    keys: ClassVar[frozenset[str]] = frozenset(
        {"image", "box", "mask", "rle", "threshold", "max_matches", "redetect_every", "prototype"}
    )

    image: str | None = None
    box: Box | None = None
    mask: np.ndarray | None = None
    threshold: float = 0.5
    max_matches: int = 1
    exemplar: Exemplar | None = None
    reference_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.reference_size is None and self.image and Path(self.image).is_file():
            self.reference_size = _image_size(Path(self.image))

    @property
    def name(self) -> str:
        """The reference's file name (what messages call it)."""
        if self.image:
            return Path(self.image).name
        return self.exemplar.name if self.exemplar else "exemplar"

    def enroll(self, backbone: Backbone) -> Exemplar:
        """Compute (once) and keep the prototype of the reference region with ``backbone``."""
        if self.exemplar is not None and self.exemplar.backbone == backbone.name:
            return self.exemplar
        if not self.image or not Path(self.image).is_file():
            raise self.error(
                f"reference image {self.image!r} is not available to enrol with {backbone.name!r}",
                "give the reference image path, or a prototype made with the same backbone",
            )
        from PIL import Image

        with Image.open(self.image) as im:
            rgb = np.asarray(im.convert("RGB"))
        region = self.mask if self.mask is not None else self.box
        assert region is not None
        self.exemplar = Exemplar.from_reference(rgb, region, backbone, name=self.name)
        return self.exemplar

    def _fields_to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.image is not None:
            out["image"] = self.image
        if self.box is not None:
            out["box"] = list(self.box)
        if self.mask is not None:
            out["rle"] = rle_encode(self.mask)
        out.update(
            threshold=self.threshold,
            max_matches=self.max_matches,
            redetect_every=self.redetect_every,
        )
        if self.exemplar is not None:
            out["prototype"] = self.exemplar.to_json()
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], base_dir: Path | None = None) -> ExemplarPrompt:
        kind = cls.kind
        check_keys(kind, obj, cls.keys)
        common = read_common(kind, obj)
        exemplar = Exemplar.from_json(obj["prototype"]) if "prototype" in obj else None
        image: str | None = None
        if "image" in obj:
            if exemplar is None:
                image = str(resolve_path(obj["image"], base_dir, kind, "image"))
            else:  # the prototype travels: the file may not exist here (or may not be read)
                image = str(obj["image"])
                if (confinement := active()) is not None and not confinement.allows(image):
                    image = None
        elif exemplar is None:
            raise PromptError(
                "missing field 'image'", 'add "image": "ref.jpg" (the reference)', kind=kind
            )
        regions = [k for k in ("box", "mask", "rle") if k in obj]
        if len(regions) != 1 and exemplar is None:
            raise PromptError(
                f"give exactly one of 'box', 'mask', 'rle' (got {regions or 'none'})",
                'add "box": [x0, y0, x1, y1] of the object in the reference image',
                kind=kind,
                value=repr(Path(image).name) if image else None,
            )
        box = read_box(kind, obj["box"]) if "box" in obj else None
        mask = None
        if "mask" in obj:
            mask = load_label_png(resolve_path(obj["mask"], base_dir, kind, "mask"), kind) > 0
        elif "rle" in obj:
            try:
                mask = rle_decode(obj["rle"])
            except (KeyError, TypeError, ValueError) as exc:
                raise PromptError(
                    f"rle cannot be decoded ({exc})",
                    'give "rle": {"size": [h, w], "counts": ...}',
                    kind=kind,
                ) from exc
        return cls(
            image=image,
            box=box,
            mask=mask,
            threshold=read_number(kind, obj.get("threshold", 0.5), "threshold"),
            max_matches=read_int(kind, obj.get("max_matches", 1), "max_matches", lo=1),
            redetect_every=read_int(kind, obj.get("redetect_every", 0), "redetect_every"),
            exemplar=exemplar,
            **common,
        )

    def check(self, width: int, height: int) -> None:
        """The region must lie inside the reference image (the frame size does not matter)."""
        if not -1.0 <= self.threshold <= 1.0:
            raise self.error(
                f"threshold {fmt_num(self.threshold)} is outside -1..1",
                "give a cosine similarity, e.g. 0.5",
            )
        if self.exemplar is not None:
            return
        if self.reference_size is None:
            raise self.error(
                f"reference image {self.image!r} cannot be read", "give an existing image file"
            )
        ref_h, ref_w = self.reference_size
        if self.box is not None:
            problem = box_problem(self.box, ref_w, ref_h)
            if problem:
                raise self.error(problem[0].replace("frame", "reference image"), problem[1])
        elif self.mask is not None:
            if self.mask.shape != (ref_h, ref_w):
                raise self.error(
                    f"mask size {self.mask.shape[1]}x{self.mask.shape[0]} differs from the "
                    f"reference image size {ref_w}x{ref_h}",
                    "give a mask of the reference image's size",
                )
            if not self.mask.any():
                raise self.error("empty mask (every pixel is 0)", "mark the object in the mask")
        else:
            raise self.error("no box or mask", "give the object's box or mask in the reference")

    def describe(self) -> str:
        return repr(self.name)

    def plan(self, frame: PromptFrame, first: bool) -> list[MaskAsk]:
        """Box requests for the matches of the exemplar in ``frame`` (enrolled with the frame's
        backbone when it has none from that backbone); none where it is first applied is an
        error."""
        exemplar = self.exemplar
        backbone = frame.backbone
        if exemplar is None or (backbone is not None and exemplar.backbone != backbone.name):
            if backbone is None:
                raise self.error(
                    "the exemplar is not enrolled",
                    "call prompt.enroll(backbone) first, or pass backbone= to resolve_prompts",
                )
            exemplar = self.enroll(backbone)
        matches = exemplar.match(frame.features, self.threshold, self.max_matches)
        if not matches and first:
            raise self.no_match(frame.index, exemplar.best_similarity(frame.features))
        return frame.box_asks(((box, score, self.label) for box, score in matches), first)

    def no_match(self, frame_index: int, best: float) -> PromptError:
        """The error for an exemplar that matched nothing where it was first applied."""
        return self.error(
            f"matched nothing in frame {frame_index} (best similarity {best:.2f} < "
            f"{fmt_num(self.threshold)})",
            "lower --exemplar-threshold or choose a clearer reference",
        )


def _image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an image file from its header, or None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(im.height), int(im.width)
    except OSError:
        return None
