"""Detections drawn onto a frame, for people to look at (captures, debugging, docs).

``to_bgr`` (any ``PixelLayout`` to a BGR image) is the conversion preprocessing uses,
re-exported here so callers need one import.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable

import cv2
import numpy as np

from robovision.detection import Detection
from robovision.errors import ConfigError
from robovision.preprocess import to_bgr

log = logging.getLogger(__name__)

__all__ = ["draw_detections", "label_colour_bgr", "to_bgr"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_colour_bgr(label: str) -> tuple[int, int, int]:
    """A bright colour for ``label``, the same on every run and machine (hashed from its name)."""
    hue = zlib.crc32(label.encode("utf-8")) % 180  # OpenCV hue is 0..179
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _text_colour(background_bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = background_bgr
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


def draw_detections(
    frame_bgr: np.ndarray,
    detections: Iterable[Detection],
    *,
    thickness: int = 2,
    font_scale: float = 0.5,
) -> np.ndarray:
    """A new (h, w, 3) uint8 BGR image: ``frame_bgr`` with each detection's box and label.

    Each box is drawn inside its ``box_xyxy`` (frame pixels) in the label's colour, with
    "label 0.87" on a filled tag above the box (inside it when the box touches the top
    edge). Boxes reaching past the frame are clipped. ``frame_bgr`` is not modified.
    """
    if not isinstance(frame_bgr, np.ndarray) or frame_bgr.dtype != np.uint8 or frame_bgr.ndim != 3:
        raise ConfigError(
            "draw_detections needs a (h, w, 3) uint8 BGR image; convert other layouts with to_bgr"
        )
    if frame_bgr.shape[2] != 3:
        raise ConfigError(f"draw_detections needs 3 channels (BGR), got shape {frame_bgr.shape}")
    image = np.array(frame_bgr, order="C", copy=True)
    for detection in detections:
        _draw_one(image, detection, max(1, int(thickness)), float(font_scale))
    return image


def _draw_one(image: np.ndarray, detection: Detection, thickness: int, font_scale: float) -> None:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (round(v) for v in detection.box_xyxy)
    x0, x1 = max(0, min(x0, w - 1)), max(0, min(x1 - 1, w - 1))
    y0, y1 = max(0, min(y0, h - 1)), max(0, min(y1 - 1, h - 1))
    if x1 < x0 or y1 < y0:
        return
    colour = label_colour_bgr(detection.label)
    inset = thickness // 2  # thick lines are centred on the path; keep them inside the box
    cv2.rectangle(
        image,
        (min(x0 + inset, x1), min(y0 + inset, y1)),
        (max(x1 - inset, x0), max(y1 - inset, y0)),
        colour,
        thickness,
        lineType=cv2.LINE_8,
    )

    text = f"{detection.label} {detection.score:.2f}"
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, 1)
    tag_h = text_h + baseline + 4
    tag_top = y0 - tag_h if y0 - tag_h >= 0 else y0
    tag_right = min(w - 1, x0 + text_w + 4)
    cv2.rectangle(image, (x0, tag_top), (tag_right, tag_top + tag_h - 1), colour, cv2.FILLED)
    cv2.putText(
        image,
        text,
        (x0 + 2, tag_top + text_h + 2),
        _FONT,
        font_scale,
        _text_colour(colour),
        1,
        lineType=cv2.LINE_AA,
    )
