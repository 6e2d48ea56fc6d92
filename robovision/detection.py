"""Detections and the result of running a model on one frame."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Detection:
    """One object found in a frame.

    ``box_xyxy`` is (x_min, y_min, x_max, y_max) in frame pixels; ``box_xyxy_norm``
    is the same box divided by the frame width and height (0..1).
    """

    label: str
    class_id: int
    score: float
    box_xyxy: tuple[float, float, float, float]
    box_xyxy_norm: tuple[float, float, float, float]

    @property
    def center_xy(self) -> tuple[float, float]:
        """Box centre in frame pixels."""
        x0, y0, x1, y1 = self.box_xyxy
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0

    def to_dict(self, hfov_deg: float | None = None) -> dict[str, Any]:
        """JSON-ready form; ``bearing_deg`` is added when the horizontal field of view is known.

        Bearing is the horizontal angle of the box centre from the camera axis,
        positive to the right, for a pinhole camera with that field of view.
        """
        out: dict[str, Any] = {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box_xyxy": [round(v, 1) for v in self.box_xyxy],
            "box_xyxy_norm": [round(v, 5) for v in self.box_xyxy_norm],
            "center_xy": [round(v, 1) for v in self.center_xy],
        }
        if hfov_deg is not None:
            out["bearing_deg"] = round(bearing_deg(self.box_xyxy_norm, hfov_deg), 2)
        return out


def bearing_deg(box_xyxy_norm: tuple[float, float, float, float], hfov_deg: float) -> float:
    """Horizontal angle in degrees of the box centre from the optical axis (right is positive)."""

    cx_norm = (box_xyxy_norm[0] + box_xyxy_norm[2]) / 2.0
    half_width = math.tan(math.radians(hfov_deg) / 2.0)
    return math.degrees(math.atan((2.0 * cx_norm - 1.0) * half_width))


@dataclass(frozen=True)
class FrameResult:
    """What a model made of one frame, with the time each stage took (milliseconds)."""

    detections: tuple[Detection, ...]
    preprocess_ms: float
    inference_ms: float
    decode_ms: float
