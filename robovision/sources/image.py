"""A single image file as a source, and the image-decoding helpers the file sources share."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from robovision.errors import SourceError, SourceNotFoundError
from robovision.frame import Frame, PixelLayout
from robovision.sources.base import FrameSource

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image_bgr(path: Path) -> np.ndarray:
    """Decode an image file to a new (h, w, 3) uint8 BGR array.

    The EXIF orientation tag is applied (OpenCV's decoder does this unless told
    ``IMREAD_IGNORE_ORIENTATION``), so a phone photo taken upright comes out upright.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise SourceNotFoundError(f"no image file at {path}: check the path") from None
    except IsADirectoryError:
        raise SourceError(f"{path} is a folder; give a folder source or an image file") from None
    except PermissionError:
        raise SourceError(f"cannot read {path}: permission denied; check the file's owner and mode") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(
            f"cannot decode {path} as an image (is the file complete?); "
            f"supported: {', '.join(IMAGE_SUFFIXES)}"
        )
    return image


class ImageSource(FrameSource):
    """One image file, handed out once (or forever with ``loop=True``).

    The image is decoded at ``open()``; every frame shares that one read-only array.
    """

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        self.path = Path(path)
        super().__init__(f"file:{self.path.name}")
        self.loop = bool(loop)
        self._image: Optional[np.ndarray] = None
        self._delivered = False

    def _open(self) -> None:
        image = read_image_bgr(self.path)
        image.setflags(write=False)
        self._image = image
        self._delivered = False
        log.info("image %s is %dx%d", self.path, image.shape[1], image.shape[0])

    def _read(self, timeout_s: Optional[float]) -> Optional[Frame]:
        if self._image is None or (self._delivered and not self.loop):
            return None
        self._delivered = True
        return self._make_frame(self._image, PixelLayout.BGR)

    def _close(self) -> None:
        self._image = None
