"""Image folders (DAVIS-style ``00000.jpg`` ...) as a source, in natural name order."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.limits import LimitError, check_image_size
from pipeline.sources.base import SourceInfo
from pipeline.sources.config import SourceConfig
from pipeline.sources.events import EventSink
from pipeline.sources.sampling import Sampler
from pipeline.sources.sizing import output_size
from pipeline.types import Frame

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders ``frame2.jpg`` before ``frame10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, in natural name order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


class ImageFolderSource:
    """A folder of images read one at a time; PTS = index / ``config.images_fps``.

    Args:
        folder: The folder.
        source_id: Name put on every frame.
        config: Range, sampling, size and ``images_fps`` settings.
        events: Where ``source.eof`` / ``source.error`` go.

    Raises:
        SourceError: The folder holds no images, or its first image cannot be read.
    """

    reader = "images"

    def __init__(
        self, folder: str, source_id: str, config: SourceConfig, events: EventSink
    ) -> None:
        self.folder = folder
        self.source_id = source_id
        self.events = events
        self.dropped = 0
        self.paths = list_images(Path(folder))
        if not self.paths:
            raise events.error(
                f"{folder!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) — "
                "give a folder of frames such as 00000.jpg, 00001.jpg, ..."
            )
        self.max_pixels = config.max_pixels
        fps = config.images_fps
        self.pts = np.arange(len(self.paths), dtype=np.float64) / fps
        first = self._read(0)
        height, width = first.shape[:2]
        try:
            self.width, self.height = output_size(width, height, config, folder)
        except ValueError as exc:
            raise events.error(f"{folder!r}: {exc}") from exc
        self._sampler = Sampler(self.pts, config)
        self.info = SourceInfo(
            uri=folder,
            kind="images",
            frames=len(self.paths),
            fps=fps,
            duration=len(self.paths) / fps,
            width=self.width,
            height=self.height,
            codec=self.paths[0].suffix.lower().lstrip("."),
            vfr=False,
            rotation=0,
            reader=self.reader,
        )

    def _read(self, index: int) -> np.ndarray:
        path = self.paths[index]
        try:  # the header's size, before anything is decoded
            with Image.open(path) as im:
                check_image_size(im.width, im.height, self.max_pixels)
        except (LimitError, Image.DecompressionBombError) as exc:
            raise self.events.error(
                f"{str(path)!r}: {exc} — resize it, or raise source.max_pixels",
                frame_index=index - 1 if index else None,
            ) from exc
        except OSError:
            pass  # not an image PIL knows: cv2 says below whether it is readable
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise self.events.error(
                f"{str(path)!r} (frame {index} of {self.folder!r}) is not a readable image — "
                "replace or remove it",
                frame_index=index - 1 if index else None,
            )
        return image

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Frames from index ``start`` on (resume), sampled and ranged as configured."""
        last = None
        for index in self._sampler.indices(start):
            image = self._read(index)
            if image.shape[1] != self.width or image.shape[0] != self.height:
                image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
            yield Frame(
                source_id=self.source_id,
                index=index,
                pts=float(self.pts[index]),
                wall_time=time.time(),
                image=np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)),
            )
            last = index
        self.events.emit("source.eof", f"end of {self.folder!r}", frame_index=last)

    def close(self) -> None:
        """Nothing to release (files are opened one at a time)."""
