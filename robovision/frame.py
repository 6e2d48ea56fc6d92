"""Frames as sources hand them out, in one of a few pixel layouts."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class PixelLayout(str, enum.Enum):
    """Memory layout of ``Frame.image``.

    Channel names are in memory order, as OpenCV and picamera2 use them:

    - ``BGR``: (h, w, 3) uint8, OpenCV's order; picamera2 calls this "RGB888".
    - ``RGB``: (h, w, 3) uint8; picamera2 calls this "BGR888".
    - ``XRGB8888``: (h, w, 4) uint8, bytes B, G, R, X in memory (picamera2 "XRGB8888").
    - ``XBGR8888``: (h, w, 4) uint8, bytes R, G, B, X in memory (picamera2 "XBGR8888").
    - ``YUV420``: (h * 3 // 2, w) uint8, I420 planar: Y plane, then U, then V
      (picamera2 "YUV420", the usual lores format).
    - ``GRAY``: (h, w) uint8.

    Rows may be padded (a stride wider than ``w * channels``); consumers must not
    assume a contiguous array.
    """

    BGR = "bgr"
    RGB = "rgb"
    XRGB8888 = "xrgb8888"
    XBGR8888 = "xbgr8888"
    YUV420 = "yuv420"
    GRAY = "gray"


def image_size_wh(image: np.ndarray, layout: PixelLayout) -> tuple[int, int]:
    """Width and height in pixels of ``image`` stored in ``layout``."""
    height, width = image.shape[:2]
    if layout is PixelLayout.YUV420:
        return width, height * 2 // 3
    return width, height


@dataclass(frozen=True)
class Frame:
    """One captured image and when it was taken.

    ``image`` is owned by the frame: a source never writes into an array it has
    handed out, so a frame may be kept or passed to another thread as it is.
    """

    image: np.ndarray
    layout: PixelLayout
    frame_id: int
    t_capture_mono: float
    """``time.monotonic()`` when the frame was captured; use for durations."""
    t_capture_wall: float
    """``time.time()`` when the frame was captured; for people and other hosts."""
    source: str
    """A short name of the source, e.g. ``file:car.jpg`` or ``picamera2:0``."""

    @property
    def size_wh(self) -> tuple[int, int]:
        return image_size_wh(self.image, self.layout)
